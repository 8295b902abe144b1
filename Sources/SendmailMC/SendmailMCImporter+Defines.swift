/// define(`confX', `value') and sendmail's other defined names.
extension SendmailMCImporter {
    /// Timeouts with a key of their own: (key, sendmail's unit for a bare
    /// number).
    static let timeouts: [String: (key: String, unit: Character)] = [
        "confTO_CONNECT": ("smtp_connect_timeout", "m"),
        "confTO_INITIAL": ("smtp_helo_timeout", "m"),
        "confTO_HELO": ("smtp_helo_timeout", "m"),
        "confTO_MAIL": ("smtp_mail_timeout", "m"),
        "confTO_RCPT": ("smtp_rcpt_timeout", "m"),
        "confTO_DATAINIT": ("smtp_data_init_timeout", "m"),
        "confTO_DATAFINAL": ("smtp_data_done_timeout", "m"),
        "confTO_RSET": ("smtp_quit_timeout", "m"),
        "confTO_QUIT": ("smtp_quit_timeout", "m"),
        "confTO_COMMAND": ("smtpd_timeout", "m"),
        "confTO_QUEUEWARN": ("delay_warning_time", "h"),
        "confTO_QUEUEWARN_NORMAL": ("delay_warning_time", "h"),
        "confTO_QUEUERETURN": ("maximal_queue_lifetime", "d"),
        "confTO_QUEUERETURN_NORMAL": ("maximal_queue_lifetime", "d"),
        "confMIN_QUEUE_AGE": ("minimal_backoff_time", "m"),
    ]

    /// Names that configure only sendmail's own files, processes and logs.
    static let ownFiles: Set<String> = [
        "QUEUE_DIR", "STATUS_FILE", "HELP_FILE", "confPID_FILE", "confCONTROL_SOCKET_NAME",
        "confHOST_STATUS_DIRECTORY", "confDEAD_LETTER_DROP", "confSERVICE_SWITCH_FILE", "confHELP_FILE",
        "confHOSTS_FILE", "confPROCESS_TITLE_PREFIX", "confCF_VERSION", "confEBINDIR", "confRUN_AS_USER",
        "confTRUSTED_USER", "confQUEUE_FILE_MODE", "confTEMP_FILE_MODE", "confSAFE_QUEUE", "confLOG_LEVEL",
        "confSTATUS_FILE", "confQUEUE_DIR", "confDONT_PROBE_INTERFACES", "confCON_EXPENSIVE", "confDIAL_DELAY",
        "confMCI_CACHE_SIZE", "confMCI_CACHE_TIMEOUT", "confQUEUE_SORT_ORDER", "confMAX_QUEUE_RUN_SIZE",
        "confMAX_QUEUE_CHILDREN", "confMAX_RUNNERS_PER_QUEUE", "confFAST_SPLIT", "confNICE_QUEUE_RUN",
        "confSTATISTICS_FILE", "confSM_VERSION", "confDEF_CHAR_SET", "confMUST_QUOTE_CHARS", "confOPERATORS",
        "confTO_IDENT", "confCHECKPOINT_INTERVAL", "confQUEUE_FACTOR", "confWORK_RECIPIENT_FACTOR",
        "confWORK_CLASS_FACTOR", "confWORK_TIME_FACTOR", "confSAFE_FILE_ENV", "confXF_BUFFER_SIZE",
        "confDF_BUFFER_SIZE", "confMAX_MIME_HEADER_LENGTH_CHECK",
    ]

    mutating func define(_ name: String, _ value: String, _ origin: Origin) {
        if let (key, unit) = Self.timeouts[name] {
            guard let seconds = Self.seconds(value, defaultUnit: unit) else {
                notTranslated(origin, "cannot read the time '\(value)'")
                return
            }
            set(key, Self.time(seconds), origin, note: Self.timeoutNotes[name])
            return
        }
        if name == "MAIL_SETTINGS_DIR" {
            mailSettingsDirectory = value.hasSuffix("/") ? value : value + "/"
            ignored(origin, "the directory of the map and class files: the file names translated here are in it")
            return
        }
        if Self.ownFiles.contains(name) {
            ignored(origin, name == "confTO_IDENT" ? "hikyaku makes no ident (RFC 1413) queries"
                    : "concerns sendmail's own files, processes or logs; hikyaku has its own (queue_directory, maillog_file)")
            return
        }
        switch name {
        case _ where name.hasPrefix("_"):
            ignored(origin, "m4 boilerplate: a switch of sendmail's m4 files")
        case "SMART_HOST":
            smartHost = (value, origin)
        case "MAIL_HUB", "LOCAL_RELAY", "LUSER_RELAY", "UUCP_RELAY", "BITNET_RELAY", "DECNET_RELAY", "FAX_RELAY":
            notTranslated(origin, "no equivalent: mail for local users and unknown local names is delivered on this host")
        case "ALIAS_FILE":
            let files = value.split(separator: ",").map { file -> String in
                let text = file.trimmingSpace
                if let colon = text.firstIndex(of: ":"), !text.hasPrefix("/") { return String(text[text.index(after: colon)...]) }
                return text
            }
            guard let first = files.first, first.hasPrefix("/") else {
                notTranslated(origin, "alias_file takes an absolute file name, not '\(value)'")
                return
            }
            set("alias_file", first, origin)
            if files.count > 1 {
                notTranslated(origin, "alias_file is one file: the aliases of \(files.dropFirst().joined(separator: ", ")) are not read")
            }
        case "confDOMAIN_NAME":
            if value.contains("$") || value.isEmpty {
                notTranslated(origin, "myhostname takes a name, not sendmail macros")
            } else {
                set("myhostname", value, origin)
            }
        case "confCW_FILE", "confCT_FILE":
            classFileDefines[name] = (value, origin)
        case "confCR_FILE":
            setPath("relay_domains_file", classFilePath(value), origin)
        case "confMAX_MESSAGE_SIZE":
            guard let size = Int(value), size >= 0 else {
                notTranslated(origin, "cannot read the size '\(value)'")
                return
            }
            set("message_size_limit", String(size), origin, note: size == 0 ? "0: no limit, in both" : nil)
        case "confMAX_RCPTS_PER_MESSAGE":
            guard let count = Int(value), count >= 0 else {
                notTranslated(origin, "cannot read the number '\(value)'")
                return
            }
            if count == 0 {
                notTranslated(origin, "0 means no limit in sendmail; hikyaku always has one (smtpd_recipient_limit, 1000 by default)")
            } else {
                set("smtpd_recipient_limit", String(count), origin, note: "more recipients get 452 4.5.3, as in sendmail")
            }
        case "confPRIVACY_FLAGS":
            privacyFlags(value, origin)
        case "confMAX_DAEMON_CHILDREN":
            guard let count = Int(value), count >= 0 else {
                notTranslated(origin, "cannot read the number '\(value)'")
                return
            }
            if count == 0 {
                ignored(origin, "0: no limit; hikyaku's smtpd_session_limit (10000 sessions per process) stays")
            } else {
                set("smtpd_session_limit", String(count), origin,
                    note: "sessions per smtpd process (smtpd_process_limit of them); a client beyond it gets 421 where sendmail lets it wait")
            }
        case "confCONNECTION_RATE_THROTTLE":
            notTranslated(origin, "no equivalent: sendmail makes connections beyond \(value) a second wait; hikyaku limits each "
                          + "client instead (smtpd_client_connection_rate_limit, per minute)")
        case "confCONNECTION_RATE_WINDOW_SIZE":
            ignored(origin, "the window of FEATURE(`ratecontrol')'s ClientRate: limits, which hikyaku does not read (see there)")
        case "confBAD_RCPT_THROTTLE":
            notTranslated(origin, "no equivalent: sendmail slows a client down after \(value) unknown recipients; hikyaku ends "
                          + "the session after smtpd_hard_error_limit errors")
        case "confREFUSE_LA", "confQUEUE_LA", "confDELAY_LA", "confREJECT_LOG_INTERVAL":
            notTranslated(origin, "no equivalent: hikyaku does not look at the load average")
        case "confMIN_FREE_BLOCKS":
            notTranslated(origin, "no equivalent: hikyaku does not refuse mail when the disk is nearly full")
        case "confDEF_USER_ID":
            let user = value.split(separator: ":").first.map(String.init) ?? ""
            if user.isEmpty || user.allSatisfy({ $0.isNumber }) {
                notTranslated(origin, "default_privs takes a user name, not \(value)")
            } else {
                set("default_privs", user, origin,
                    note: "the user that files and commands of root's aliases and include files run as")
            }
        case "confDELIVERY_MODE":
            switch value.lowercased().first {
            case "b", "i":
                remark(origin, "hikyaku queues every message and delivers it at once, in the background")
            default:
                notTranslated(origin, "no equivalent: hikyaku delivers at once; it has no queue-only or deferred mode")
            }
        case "confAUTH_MECHANISMS":
            authMechanisms = origin
            let others = value.uppercased().split(whereSeparator: { $0 == " " || $0 == "," })
                .map(String.init).filter { $0 != "PLAIN" && $0 != "LOGIN" }
            if !others.isEmpty {
                notTranslated(origin, "hikyaku offers PLAIN and LOGIN only: \(others.joined(separator: ", ")) not available")
            }
        case "confAUTH_OPTIONS":
            remark(origin, "hikyaku offers AUTH only inside TLS, and passwords are Dovecot's (smtpd_sasl_path)")
        case "confAUTH_REALM":
            ignored(origin, "Dovecot's configuration decides the realm")
        case _ where ["confSERVER_CERT", "confSERVER_KEY", "confCACERT"].contains(name) && !value.hasPrefix("/"):
            notTranslated(origin, "the file, \(value), is not an absolute file name")
        case "confSERVER_CERT":
            set("smtpd_tls_cert_file", value, origin)
        case "confSERVER_KEY":
            set("smtpd_tls_key_file", value, origin)
        case "confCACERT":
            set("smtp_tls_CAfile", value, origin,
                note: "the authorities smtp-client checks servers against; smtpd asks clients for no certificate")
        case "confCACERT_PATH":
            if value.trimmingSpace == "/etc/ssl/certs" {
                remark(origin, "the same authorities as hikyaku's default smtp_tls_CAfile (/etc/ssl/certs/ca-certificates.crt)")
            } else {
                notTranslated(origin, "smtp_tls_CAfile takes one file: put the directory's certificates into one")
            }
        case "confTLS_SRV_OPTIONS":
            if value.allSatisfy({ $0 == "V" || $0 == " " || $0 == "," }) {
                remark(origin, "smtpd asks clients for no certificate")
            } else {
                notTranslated(origin, "no equivalent: sendmail's TLS server options \(value)")
            }
        case "confCLIENT_CERT", "confCLIENT_KEY":
            notTranslated(origin, "no equivalent: smtp-client presents no certificate")
        case "confCIPHER_LIST", "confSERVER_SSL_OPTIONS", "confCLIENT_SSL_OPTIONS", "confDH_PARAMETERS", "confCRL",
             "confCRL_PATH", "confTLS_FALLBACK_TO_CLEAR":
            notTranslated(origin, "no equivalent: hikyaku's TLS uses TLS 1.2 or later with its own cipher list (smtpd_tls_cipherlist)")
        case "confSMTP_LOGIN_MSG":
            let banner = value.replacingDollarJ
            if value.withoutDollarJ.contains("$") {
                notTranslated(origin, "smtpd_banner knows $myhostname only, not sendmail's other macros ($v, $Z, $b, ...)")
            } else {
                set("smtpd_banner", banner, origin)
            }
        case "confHELO_NAME":
            let name = value.replacingDollarJ
            if value.withoutDollarJ.contains("$") {
                notTranslated(origin, "smtp_helo_name takes a name, not sendmail macros")
            } else {
                set("smtp_helo_name", name, origin)
            }
        case "confTO_QUEUEWARN_URGENT", "confTO_QUEUEWARN_NONURGENT", "confTO_QUEUERETURN_URGENT", "confTO_QUEUERETURN_NONURGENT":
            notTranslated(origin, "no equivalent: hikyaku has one time for every priority (delay_warning_time, maximal_queue_lifetime)")
        case "confFORWARD_PATH":
            if value == "$z/.forward" || value == "$z/.forward.$w+$h:$z/.forward+$h:$z/.forward.$w:$z/.forward" {
                remark(origin, "hikyaku reads ~/.forward")
            } else {
                notTranslated(origin, "no equivalent: hikyaku reads ~/.forward only")
            }
        case "confDONT_BLAME_SENDMAIL", "confUNSAFE_GROUP_WRITES":
            notTranslated(origin, "no equivalent: hikyaku applies its own checks to .forward and :include: files")
        case "confFALLBACK_MX", "confFALLBACK_SMARTHOST", "confTRY_NULL_MX_LIST":
            notTranslated(origin, "no equivalent: smtp-client tries the MX hosts, the smart host or the mailertable route only")
        case _ where name.hasSuffix("_MAILER_ARGS") && ["RELAY", "ESMTP", "SMTP", "SMTP8", "DSMTP"].contains(String(name.dropLast(12))):
            mailerArguments[String(name.dropLast(12)).lowercased()] = (value, origin)
        case _ where name.contains("_MAILER_") || name.hasPrefix("LOCAL_SHELL_") || name.hasPrefix("PROCMAIL_")
            || name.hasPrefix("CYRUS") || name.hasPrefix("UUCP_"):
            notTranslated(origin, "no equivalent: how sendmail runs a mailer; hikyaku's programs are built in")
        case _ where name.hasPrefix("conf"):
            notTranslated(origin, "no equivalent in hikyaku")
        default:
            ignored(origin, "a name this file defines for its own use")
        }
    }

    static let timeoutNotes: [String: String] = [
        "confTO_INITIAL": "smtp_helo_timeout is also the wait for replies to EHLO, HELO and STARTTLS",
        "confTO_HELO": "smtp_helo_timeout is also the wait for the greeting and for STARTTLS",
        "confTO_RSET": "smtp_quit_timeout is also the wait for the reply to QUIT",
        "confTO_QUIT": "smtp_quit_timeout is also the wait for the reply to RSET",
        "confTO_QUEUEWARN_NORMAL": "for mail of every priority",
        "confTO_QUEUERETURN_NORMAL": "for mail of every priority",
        "confMIN_QUEUE_AGE": "the shortest wait before a deferred message is tried again",
    ]

    mutating func undefine(_ name: String, _ origin: Origin) {
        if Self.ownFiles.contains(name) || name.hasPrefix("_") {
            ignored(origin, "concerns sendmail's own files or m4 machinery")
            return
        }
        let keys = settings.values.filter { $0.origins.contains(where: { $0.text.contains("`\(name)'") }) }.map(\.key)
        for key in keys {
            settings[key] = nil
            keyOrder.removeAll { $0 == key }
        }
        if keys.isEmpty {
            notTranslated(origin, "sendmail's default for \(name) is not translated")
        } else {
            remark(origin, "\(keys.joined(separator: ", ")) left at hikyaku's default")
        }
    }

    /// confPRIVACY_FLAGS: each flag is set, already so, or not available.
    mutating func privacyFlags(_ value: String, _ origin: Origin) {
        var flags = value.lowercased().split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
        if flags.contains("goaway") {
            flags.removeAll { $0 == "goaway" }
            flags += ["needmailhelo", "needexpnhelo", "needvrfyhelo", "noexpn", "novrfy", "noverb", "noetrn",
                      "noreceipts", "nobodyreturn", "authwarnings"]
        }
        var already: [String] = []
        for flag in flags {
            switch flag {
            case "public":
                continue
            case "novrfy":
                set("disable_vrfy_command", "yes", origin,
                    note: "novrfy: VRFY is refused with 502 (sendmail answers 252 without checking the user, as hikyaku does by default)")
            case "needmailhelo", "needexpnhelo", "noexpn", "noverb", "noetrn", "needvrfyhelo", "authwarnings", "restrictqrun":
                if !already.contains(flag) { already.append(flag) }
            case "noreceipts":
                notTranslated(origin, "noreceipts: no equivalent; hikyaku sends the success notices (DSN NOTIFY=SUCCESS) clients ask for")
            case "nobodyreturn":
                notTranslated(origin, "nobodyreturn: no equivalent; hikyaku's failure notices return the message unless the sender asked for headers only (RET=HDRS)")
            case "restrictmailq":
                notTranslated(origin, "restrictmailq: no equivalent; mailq lists the queue for every user")
            case "restrictexpand":
                notTranslated(origin, "restrictexpand: no equivalent; sendmail -bv and -bt work for every user")
            case "noactualrecipient":
                notTranslated(origin, "noactualrecipient: no equivalent")
            default:
                notTranslated(origin, "\(flag): unknown privacy flag")
            }
        }
        if !already.isEmpty {
            remark(origin, already.joined(separator: ", ")
                   + ": hikyaku does so always (MAIL needs HELO or EHLO, no EXPN, VERB or ETRN, VRFY reveals nothing, "
                   + "X-Authentication-Warning for sendmail -f, queue runs by root only)")
        }
    }
}

extension String {
    var withoutDollarJ: String {
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: "$j") {
            out += rest[..<range.lowerBound]
            rest = rest[range.upperBound...]
        }
        return out + rest
    }

    /// sendmail's `$j` (this host's name) as hikyaku.conf's `$myhostname`.
    var replacingDollarJ: String {
        var out = ""
        var rest = Substring(self)
        while let dollar = rest.firstIndex(of: "$") {
            out += rest[..<dollar]
            let next = rest.index(after: dollar)
            if next < rest.endIndex, rest[next] == "j" {
                out += "$myhostname"
                rest = rest[rest.index(after: next)...]
            } else {
                out += "$"
                rest = rest[next...]
            }
        }
        return out + rest
    }
}
