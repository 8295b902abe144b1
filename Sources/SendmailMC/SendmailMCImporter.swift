import HikyakuConfig

/// SendmailMCImporter - sendmail.mc to hikyaku.conf
///
/// Description: translates the macros of a sendmail.mc file (as
/// ``M4Reader`` reads them) into hikyaku.conf settings: the daemons'
/// addresses and ports, the maps and class files, the relay and access
/// features, the smart host, masquerading, limits, privacy flags, timeouts,
/// TLS and AUTH. Every setting names the macros it comes from; every macro
/// that is not translated is listed with the reason, and marked when sendmail
/// did something the settings do not (``MCTranslation/exitStatus``).
///
/// Only keys of ``ConfigParameter/all`` are produced. Settings that sendmail
/// implies by the absence of a macro are produced too: the listening
/// addresses (no `DAEMON_OPTIONS`: every IPv4 address, port 25), no
/// `FEATURE(delay_checks)` and no `FEATURE(greet_pause)`.
///
/// Pure: the file's text and any included file come from the caller.
///
/// See also: docs/SENDMAIL-COMPATIBILITY.md (section "Importing a
/// sendmail.mc"), hikyaku(8).
public struct SendmailMCImporter {
    public static func translate(_ text: String, file: String,
                                 includes: @escaping M4Reader.IncludeReader = { _ in .failure(MCIncludeFailure("included files are not read")) })
        throws(MCParseError) -> MCTranslation {
        translate(try M4Reader.read(text, file: file, includes: includes), file: file)
    }

    public static func translate(_ statements: [MCStatement], file: String) -> MCTranslation {
        var importer = SendmailMCImporter(file: file)
        for (order, statement) in statements.enumerated() {
            importer.take(statement, order: order + 1)
        }
        importer.finish()
        return MCTranslation(file: file, settings: importer.keyOrder.compactMap { importer.settings[$0] },
                             remarks: importer.remarks, untranslated: importer.untranslated)
    }

    typealias Origin = MCTranslation.Origin

    let file: String
    var settings: [String: MCTranslation.Setting] = [:]
    var keyOrder: [String] = []
    var remarks: [MCTranslation.Remark] = []
    var untranslated: [MCTranslation.Untranslated] = []

    // What is decided once the whole file has been read.
    var daemons: [(options: String, origin: Origin)] = []
    var noDefaultMSA: Origin?
    var sawGreetPause = false
    var sawDelayChecks = false
    var masqueradeAs: (value: String, origin: Origin)?
    var masqueradeFeatures: [(name: String, origin: Origin)] = []
    var smartHost: (value: String, origin: Origin)?
    var mailerArguments: [String: (value: String, origin: Origin)] = [:]
    var authMechanisms: Origin?
    var mailSettingsDirectory = "/etc/mail/"
    var classFileFeatures: [String: Origin] = [:]
    var classFileDefines: [String: (value: String, origin: Origin)] = [:]

    init(file: String) {
        self.file = file
    }

    // MARK: Recording

    mutating func set(_ key: String, _ value: String, _ origin: Origin, note: String? = nil) {
        precondition(ConfigParameter.byName[key] != nil, "not a hikyaku.conf key: \(key)")
        if var setting = settings[key] {
            setting.value = value
            setting.origins.append(origin)
            if let note { setting.notes.append(note) }
            settings[key] = setting
        } else {
            settings[key] = MCTranslation.Setting(key: key, value: value, origins: [origin], notes: note.map { [$0] } ?? [])
            keyOrder.append(key)
        }
    }

    /// A file name: absolute, or listed.
    mutating func setPath(_ key: String, _ path: String, _ origin: Origin) {
        if path.hasPrefix("/") {
            set(key, path, origin)
        } else {
            notTranslated(origin, "the file, \(path), is not an absolute file name (a name defined outside this file?)")
        }
    }

    /// Adds to a list key.
    mutating func append(_ key: String, _ values: [String], _ origin: Origin, note: String? = nil) {
        var list = settings[key].map { $0.value.split(separator: ",").map { $0.trimmingSpace } } ?? []
        for value in values where !list.contains(value) { list.append(value) }
        set(key, list.joined(separator: ", "), origin, note: note)
    }

    mutating func note(_ key: String, _ note: String) {
        settings[key]?.notes.append(note)
    }

    mutating func remark(_ origin: Origin, _ note: String) {
        remarks.append(MCTranslation.Remark(origin: origin, note: note))
    }

    mutating func notTranslated(_ origin: Origin, _ reason: String) {
        untranslated.append(MCTranslation.Untranslated(origin: origin, reason: reason, changesBehaviour: true))
    }

    mutating func ignored(_ origin: Origin, _ reason: String) {
        untranslated.append(MCTranslation.Untranslated(origin: origin, reason: reason, changesBehaviour: false))
    }

    // MARK: Statements

    mutating func take(_ statement: MCStatement, order: Int) {
        switch statement {
        case .rawText(let text, let source, let section):
            let shown = text.count > 60 ? String(text.prefix(57)) + "..." : text
            notTranslated(Origin(source: source, text: shown, order: order),
                          "a sendmail.cf line written by hand" + (section.map { " (after \($0))" } ?? "")
                          + ": sendmail.cf's rules have no equivalent in hikyaku")
        case .include(let call, let path, let status):
            let origin = Origin(source: call.source, text: call.text, order: order)
            switch status {
            case .machinery:
                ignored(origin, "m4 boilerplate: sendmail's m4 machinery, which defines the macros")
            case .read(let count) where count == 0:
                ignored(origin, "\(path) holds nothing for sendmail.cf")
            case .read:
                remark(origin, "read; what it holds is translated or listed with its own file and line")
            case .unreadable(let reason):
                notTranslated(origin, "cannot read \(path) (\(reason)): what it defines is not translated; "
                              + "run the import on it too, or check that it is empty")
            case .silentlyMissing:
                ignored(origin, "\(path) does not exist, and sinclude skips a missing file")
            }
        case .condition(let call, let outcome):
            ignored(Origin(source: call.source, text: call.text, order: order), "m4 condition: \(outcome)")
        case .undecided(let call, let reason):
            notTranslated(Origin(source: call.source, text: call.text, order: order),
                          "not evaluated: \(reason); what it would define is not translated")
        case .macro(let call):
            macro(call, Origin(source: call.source, text: call.text, order: order))
        }
    }

    mutating func macro(_ call: MCMacroCall, _ origin: Origin) {
        if call.opaque {
            notTranslated(origin, "not evaluated: an argument calls an m4 builtin (eval, len, ...) that is not computed")
            return
        }
        switch call.name {
        case "define", "pushdef":
            define(call.argument(0), call.argument(1).trimmingSpace, origin)
        case "undefine", "popdef":
            undefine(call.argument(0), origin)
        case "divert":
            ignored(origin, "m4 boilerplate: where m4's output goes")
        case "VERSIONID":
            ignored(origin, "m4 boilerplate: a version comment")
        case "OSTYPE":
            ignored(origin, "m4 boilerplate: sendmail's own paths on \(call.argument(0))")
        case "DOMAIN":
            if call.argument(0) == "debian-mta" {
                ignored(origin, "m4 boilerplate: Debian's paths, file modes and timeouts for sendmail itself")
            } else {
                notTranslated(origin, "cf/domain/\(call.argument(0)).m4 is not read: translate what it defines by hand")
            }
        case "MAILER":
            mailer(call.argument(0), origin)
        case "MAILER_DEFINITIONS":
            ignored(origin, "m4 boilerplate: the mailers follow")
        case _ where M4Reader.rawSections.contains(call.name):
            ignored(origin, "starts sendmail.cf lines written by hand (each is listed on its own)")
        case "FEATURE":
            feature(call, origin)
        case "DAEMON_OPTIONS":
            daemons.append((call.argument(0), origin))
        case "CLIENT_OPTIONS":
            notTranslated(origin, "no equivalent: smtp-client connects from the address and family the system chooses")
        case "MASQUERADE_AS":
            masqueradeAs = (call.argument(0).trimmingSpace, origin)
        case "MASQUERADE_DOMAIN", "MASQUERADE_DOMAIN_FILE", "MASQUERADE_EXCEPTION", "MASQUERADE_EXCEPTION_FILE",
             "EXPOSED_USER", "EXPOSED_USER_FILE", "GENERICS_DOMAIN", "GENERICS_DOMAIN_FILE":
            notTranslated(origin, "no equivalent: hikyaku rewrites no addresses that already have a domain "
                          + "(myorigin only completes those without one)")
        case "VIRTUSER_DOMAIN":
            let domains = call.argument(0).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
            append("virtuser_domains", domains, origin)
        case "VIRTUSER_DOMAIN_FILE":
            notTranslated(origin, "virtuser_domains lists the domains themselves: copy the file's domains into it")
        case "LOCAL_DOMAIN":
            notTranslated(origin, "add \(call.argument(0).trimmingSpace) to the file of local_host_names_file")
        case "RELAY_DOMAIN":
            notTranslated(origin, "add \(call.argument(0).trimmingSpace) to the file of relay_domains_file")
        case "RELAY_DOMAIN_FILE":
            setPath("relay_domains_file", classFilePath(call.argument(0)), origin)
        case "LOCAL_USER":
            notTranslated(origin, "no equivalent: class L (users kept local under a smart host or mail hub)")
        case "TRUST_AUTH_MECH":
            remark(origin, "a client that has logged in may relay, always")
        case "SMART_HOST":
            smartHost = (call.argument(0).trimmingSpace, origin)
        case "INPUT_MAIL_FILTER", "MAIL_FILTER":
            notTranslated(origin, "no equivalent: hikyaku has no milters")
        case "HACK", "SITECONFIG", "SITE", "UUCPSMTP":
            notTranslated(origin, "no equivalent: sendmail's \(call.name) files and UUCP sites")
        case "MODIFY_MAILER_FLAGS":
            notTranslated(origin, "no equivalent: hikyaku's mailers are built in and have no flags")
        case "QUEUE_GROUP":
            notTranslated(origin, "no equivalent: hikyaku has one queue")
        case "LDAPROUTE_DOMAIN", "LDAPROUTE_DOMAIN_FILE", "CANONIFY_DOMAIN", "CANONIFY_DOMAIN_FILE":
            notTranslated(origin, "no equivalent: hikyaku neither routes through LDAP nor canonifies through DNS")
        default:
            notTranslated(origin, "unknown macro \(call.name): not translated")
        }
    }

    mutating func mailer(_ name: String, _ origin: Origin) {
        switch name.trimmingSpace {
        case "local", "smtp":
            ignored(origin, "hikyaku always delivers locally and over SMTP (smtp, esmtp, smtp8, dsmtp and relay are one)")
        case "procmail":
            notTranslated(origin, "no procmail mailer: local delivers to mailboxes itself; "
                          + "\"|/usr/bin/procmail\" in ~/.forward still works")
        default:
            notTranslated(origin, "no \(name) mailer in hikyaku: mail routed to it (mailertable) is deferred")
        }
    }

    // MARK: Results that need the whole file

    mutating func finish() {
        finishDaemons()
        finishClassFiles()
        if !sawDelayChecks {
            set("smtpd_delay_checks", "no",
                Origin(source: nil, text: "\(file): no FEATURE(`delay_checks'): sendmail checks client and sender before RCPT", order: Int.max))
        }
        if !sawGreetPause {
            set("smtpd_greet_pause", "0s",
                Origin(source: nil, text: "\(file): no FEATURE(`greet_pause'): sendmail greets at once", order: Int.max))
        }
        finishMasquerade()
        finishSmartHost()
        if let authMechanisms {
            let tagged = daemons.filter { Self.role(ofOptions: $0.options) == .smtp }
            if tagged.isEmpty || tagged.contains(where: { !Self.modifiers(ofOptions: $0.options).contains("A") }) {
                set("smtpd_sasl_auth_enable", "yes", authMechanisms,
                    note: "sendmail offers AUTH on every daemon without M=A; hikyaku offers it inside TLS, checked by Dovecot")
            }
        }
    }

    mutating func finishClassFiles() {
        for (feature, key, define, defaultName) in [("use_cw_file", "local_host_names_file", "confCW_FILE", "local-host-names"),
                                                    ("use_ct_file", "trusted_users_file", "confCT_FILE", "trusted-users")] {
            let defined = classFileDefines[define]
            if let origin = classFileFeatures[feature] {
                let path = defined.map { classFilePath($0.value) } ?? mailSettingsDirectory + defaultName
                guard path.hasPrefix("/") else {
                    notTranslated(defined?.origin ?? origin,
                                  "the file, \(path), is not an absolute file name (a name defined outside this file?)")
                    continue
                }
                set(key, path, origin)
                if let defined { settings[key]?.origins.append(defined.origin) }
            } else if let defined {
                ignored(defined.origin, "takes effect only with FEATURE(`\(feature)'), which this file does not have")
            }
        }
    }

    mutating func finishMasquerade() {
        if let (value, origin) = masqueradeAs {
            if value.contains("$") || value.isEmpty {
                notTranslated(origin, "myorigin takes a domain, not sendmail macros")
            } else {
                set("myorigin", value, origin,
                    note: "myorigin completes addresses without a domain (the sender and recipients of local mail); "
                        + "unless \(value) is in local_host_names_file, mail to a bare local name then leaves this host")
            }
        }
        for (name, origin) in masqueradeFeatures {
            if masqueradeAs == nil {
                ignored(origin, "no effect without MASQUERADE_AS")
            } else if name == "allmasquerade" {
                remark(origin, "recipients without a domain are completed with myorigin too")
            } else {
                remark(origin, "the envelope sender of local mail is completed with myorigin too")
            }
        }
    }

    mutating func finishSmartHost() {
        guard let (value, origin) = smartHost else {
            for (mailer, (arguments, origin)) in mailerArguments.sorted(by: { $0.key < $1.key }) {
                mailerArgumentsUnused(mailer, arguments, origin)
            }
            return
        }
        var host = value
        var mailer = "relay"
        if let colon = host.firstIndex(of: ":"), !host.hasPrefix("["), !host[..<colon].contains(".") {
            mailer = String(host[..<colon])
            host = String(host[host.index(after: colon)...])
        }
        guard ["relay", "smtp", "esmtp", "smtp8", "dsmtp"].contains(mailer), !host.isEmpty, !host.contains("$") else {
            notTranslated(origin, "smart_host takes an SMTP host ([host] or host), not mailer \(mailer) or sendmail macros")
            return
        }
        var port: String?
        for (name, (arguments, argumentsOrigin)) in mailerArguments.sorted(by: { $0.key < $1.key }) {
            if name == mailer, let p = Self.port(ofMailerArguments: arguments) {
                port = p
                set("smart_host", host, argumentsOrigin)
            } else {
                mailerArgumentsUnused(name, arguments, argumentsOrigin)
            }
        }
        let full = port.map { "\(host):\($0)" } ?? host
        set("smart_host", full, origin,
            note: host.hasPrefix("[") ? nil : "without brackets, smtp-client looks up the MX hosts of \(host), as sendmail does")
    }

    mutating func mailerArgumentsUnused(_ mailer: String, _ arguments: String, _ origin: Origin) {
        if Self.port(ofMailerArguments: arguments) != nil {
            notTranslated(origin, "hikyaku takes a port from each route, not from the mailer: "
                          + "write it in mailertable entries for \(mailer) (\(mailer):[host]:PORT)")
        } else if arguments.split(separator: " ").first == "TCP" || arguments.split(separator: " ").first == "IPC" {
            ignored(origin, "the \(mailer) mailer's usual arguments")
        } else {
            notTranslated(origin, "no equivalent: the \(mailer) mailer's program and arguments")
        }
    }

    // MARK: Small parsers

    /// The path of a map specification: `hash -T<TMPF> -o /etc/mail/access`.
    static func mapPath(_ specification: String) -> (type: String, path: String)? {
        let words = specification.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
        guard let first = words.first else { return nil }
        if first.contains(":"), let colon = first.firstIndex(of: ":"), words.count == 1 {
            return (String(first[..<colon]), String(first[first.index(after: colon)...]))
        }
        guard let path = words.dropFirst().last(where: { !$0.hasPrefix("-") }) else { return nil }
        return (first, path.hasSuffix(".db") ? String(path.dropLast(3)) : path)
    }

    /// The path of a class file specification: `-o /etc/mail/relay-domains %[^\#]`.
    func classFilePath(_ specification: String) -> String {
        let words = specification.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
        return words.first(where: { !$0.hasPrefix("-") && !$0.hasPrefix("%") }) ?? specification.trimmingSpace
    }

    /// The port of `TCP $h 587`.
    static func port(ofMailerArguments arguments: String) -> String? {
        let words = arguments.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.count == 3, words[0] == "TCP" || words[0] == "IPC", let port = Int(words[2]), port > 0, port < 65536 else {
            return nil
        }
        return String(port)
    }

    /// A sendmail time (`5m`, `1h30m`, `90`) in seconds; `defaultUnit` for
    /// a number without one.
    static func seconds(_ text: String, defaultUnit: Character) -> Int? {
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604_800]
        var total = 0
        var digits = ""
        var sawAny = false
        for c in text.trimmingSpace {
            if c.isASCII && c.isNumber {
                digits.append(c)
            } else if let unit = units[c], let n = Int(digits) {
                total += n * unit
                digits = ""
                sawAny = true
            } else {
                return nil
            }
        }
        if !digits.isEmpty {
            guard let n = Int(digits), let unit = units[defaultUnit] else { return nil }
            total += n * unit
            sawAny = true
        }
        return sawAny ? total : nil
    }

    /// Seconds as hikyaku writes a time, in the largest whole unit.
    static func time(_ seconds: Int) -> String {
        if seconds > 0 && seconds % 86400 == 0 { return "\(seconds / 86400)d" }
        if seconds > 0 && seconds % 3600 == 0 { return "\(seconds / 3600)h" }
        if seconds > 0 && seconds % 60 == 0 { return "\(seconds / 60)m" }
        return "\(seconds)s"
    }
}
