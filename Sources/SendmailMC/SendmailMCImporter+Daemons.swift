/// DAEMON_OPTIONS: the addresses and ports smtpd listens on.
extension SendmailMCImporter {
    enum Role: Equatable {
        case smtp, submission, smtps

        var key: String {
            switch self {
            case .smtp: return "smtpd_listen"
            case .submission: return "submission_listen"
            case .smtps: return "smtps_listen"
            }
        }
    }

    /// `Family=inet, Name=MTA-v4, Port=smtp, Addr=127.0.0.1` as (key, value)
    /// pairs, the key as sendmail tells them apart (by its first letter).
    static func options(_ text: String) -> [(key: String, value: String)] {
        text.split(separator: ",").compactMap { field in
            let parts = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts[0].trimmingSpace
            guard !key.isEmpty else { return nil }
            return (key, parts.count > 1 ? String(parts[1]).trimmingSpace : "")
        }
    }

    static func option(_ options: [(key: String, value: String)], _ letter: Character) -> String? {
        options.last(where: { $0.key.first == letter })?.value
    }

    static func modifiers(ofOptions text: String) -> String {
        option(options(text), "M") ?? ""
    }

    static func role(ofOptions text: String) -> Role {
        let modifiers = modifiers(ofOptions: text)
        if modifiers.contains("s") { return .smtps }
        if modifiers.contains("a") { return .submission }
        return .smtp
    }

    static func port(_ text: String) -> Int? {
        switch text.lowercased() {
        case "", "smtp": return 25
        case "submission": return 587
        case "smtps", "ssmtp", "submissions": return 465
        default:
            guard let n = Int(text), n > 0, n < 65536 else { return nil }
            return n
        }
    }

    static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy { $0.isASCII && $0.isNumber } && Int(part)! <= 255
        }
    }

    static func isIPv6(_ text: String) -> Bool {
        text.contains(":") && text.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }

    static let modifierMeanings: [Character: String] = [
        "b": "bind outgoing connections to the address mail came in on",
        "c": "perform no host name canonification (nocanonify)",
        "C": "perform no host name canonification",
        "f": "require fully qualified addresses",
        "h": "greet other hosts with the name of the interface",
        "u": "accept unqualified addresses",
        "S": "offer no STARTTLS",
        "I": "require a client certificate",
        "D": "perform no DSN",
        "o": "use the daemon's address for outgoing connections",
    ]

    mutating func finishDaemons() {
        var entries = daemons
        if daemons.isEmpty {
            entries.append(("Name=MTA", Origin(source: nil,
                text: "\(file): no DAEMON_OPTIONS: sendmail listens on port 25 of every IPv4 address", order: 0)))
        }
        if let noDefaultMSA {
            remark(noDefaultMSA, "sendmail's default MSA on port 587 is not opened; only the ports of DAEMON_OPTIONS are")
        } else if !daemons.contains(where: { Self.port(Self.option(Self.options($0.options), "P") ?? "") == 587 }) {
            // A daemon of the file's own on 587 takes the port (sendmail
            // could not open the default one there as well).
            entries.append(("Port=587, Name=MSA, M=E", Origin(source: nil,
                text: "\(file): no FEATURE(`no_default_msa'): sendmail's default MSA, port 587 of every IPv4 address, M=E",
                order: daemons.first?.origin.order ?? 0)))
        }
        var opened: [(role: Role, family: String, port: Int)] = []
        var wildcardsV6: [(role: Role, port: Int, origin: Origin)] = []
        for (text, origin) in entries {
            let options = Self.options(text)
            var usable = true
            for (key, value) in options {
                switch key.first {
                case "A", "F", "M", "N", "P":
                    continue
                case "L", "S", "R":
                    ignored(origin, "\(key)=\(value): a socket setting; hikyaku keeps the system's")
                case "I":
                    notTranslated(origin, "\(key)=\(value): hikyaku has no milters")
                default:
                    notTranslated(origin, "\(key)=\(value): no equivalent in hikyaku")
                }
            }
            let family = (Self.option(options, "F") ?? "inet").lowercased()
            guard family == "inet" || family == "inet6" else {
                notTranslated(origin, "Family=\(family): smtpd listens on TCP over IPv4 and IPv6 only")
                continue
            }
            guard let port = Self.port(Self.option(options, "P") ?? "") else {
                notTranslated(origin, "Port=\(Self.option(options, "P") ?? ""): write the port as a number")
                continue
            }
            var address = Self.option(options, "A") ?? ""
            let wildcard = address.isEmpty || address == "0.0.0.0" || address == "::" || address.uppercased() == "INADDR_ANY"
            if family == "inet" {
                if wildcard { address = "0.0.0.0" }
                usable = Self.isIPv4(address)
            } else {
                if wildcard { address = "::" }
                usable = Self.isIPv6(address)
            }
            guard usable else {
                notTranslated(origin, "Addr=\(address): hikyaku listens on numeric \(family == "inet" ? "IPv4" : "IPv6") addresses only")
                continue
            }
            let modifiers = Self.modifiers(ofOptions: text)
            let role = Self.role(ofOptions: text)
            let listen = family == "inet" ? "\(address):\(port)" : "[\(address)]:\(port)"
            var note: String?
            switch role {
            case .submission:
                note = "hikyaku's submission port requires STARTTLS before MAIL and a login (M=a), checked by Dovecot; it has no ETRN (M=E)"
            case .smtps:
                if !modifiers.contains("a") {
                    notTranslated(origin, "M=a is not set: sendmail takes mail on this port without a login; hikyaku's smtps_listen requires one")
                }
            case .smtp:
                if port != 25 {
                    note = "without M=a sendmail asks for no login on port \(port), so it is one more address of smtpd_listen"
                }
            }
            for letter in modifiers where !"asEAO".contains(letter) {
                notTranslated(origin, "M=\(letter) (\(Self.modifierMeanings[letter] ?? "a daemon modifier")): no equivalent in hikyaku")
            }
            append(role.key, [listen], origin, note: note)
            opened.append((role, family, port))
            if family == "inet6" && wildcard { wildcardsV6.append((role, port, origin)) }
        }
        // sendmail's socket on :: takes IPv4 as well on Linux's default
        // (net.ipv6.bindv6only = 0); hikyaku's IPv6 sockets are IPv6 only.
        for (role, port, origin) in wildcardsV6 where !opened.contains(where: { $0.role == role && $0.family == "inet" && $0.port == port }) {
            append(role.key, ["0.0.0.0:\(port)"], origin,
                   note: "sendmail's socket on [::] takes IPv4 too (Linux's default), hikyaku's IPv6 sockets IPv6 only: 0.0.0.0:\(port) added")
        }
        if !opened.contains(where: { $0.role == .smtp }), let first = daemons.first {
            set("smtpd_listen", "", Origin(source: nil, text: "\(file): no DAEMON_OPTIONS without M=a or M=s: no port for other mail servers",
                                           order: first.origin.order))
        }
    }
}
