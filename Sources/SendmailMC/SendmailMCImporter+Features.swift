/// FEATURE(`name', ...).
extension SendmailMCImporter {
    static let mapFeatures: [String: String] = [
        "access_db": "access_map", "mailertable": "mailertable_map", "virtusertable": "virtusertable_map",
        "domaintable": "domaintable_map",
    ]

    static let featureReasons: [String: String] = [
        "conncontrol": "no equivalent: hikyaku reads no ClientConn: entries from the access map; "
            + "smtpd_client_connection_count_limit (50) limits every client alike",
        "ratecontrol": "no equivalent: hikyaku reads no ClientRate: entries from the access map; "
            + "smtpd_client_connection_rate_limit limits every client alike",
        "masquerade_entire_domain": "no equivalent: hikyaku rewrites no addresses that already have a domain",
        "limited_masquerade": "no equivalent: hikyaku rewrites no addresses that already have a domain",
        "local_no_masquerade": "no equivalent: hikyaku rewrites no addresses that already have a domain",
        "genericstable": "no equivalent: hikyaku has no genericstable (it rewrites no outgoing addresses)",
        "nouucp": "no equivalent: hikyaku reads host!user as user@host.uucp (docs/SENDMAIL-COMPATIBILITY.md, 3.4)",
        "redirect": "no equivalent: hikyaku does not answer 551 for address.REDIRECT aliases",
        "smrsh": "no equivalent: commands in aliases and .forward run with /bin/sh as their owner, "
            + "not limited to the programs in smrsh's directory",
        "local_procmail": "no equivalent: local delivers to mailboxes itself; \"|/usr/bin/procmail\" in ~/.forward still works",
        "local_lmtp": "no equivalent: local delivers to mailboxes itself",
        "relay_hosts_only": "no equivalent: relay-domains and access entries in hikyaku match subdomains too",
        "relay_entire_domain": "no equivalent: list the domain in relay_domains_file (it matches its hosts)",
        "relay_based_on_MX": "no equivalent: hikyaku relays by access, relay-domains and login only, never by MX records",
        "relay_local_from": "no equivalent: a local sender address grants no relaying in hikyaku",
        "relay_mail_from": "no equivalent: the sender address grants no relaying in hikyaku",
        "promiscuous_relay": "no equivalent: hikyaku cannot be an open relay; list who may relay in the access map",
        "accept_unqualified_senders": "no equivalent: hikyaku refuses a sender without a domain from other hosts",
        "blocklist_recipients": "no equivalent: hikyaku ignores To: entries for local recipients",
        "blacklist_recipients": "no equivalent: hikyaku ignores To: entries for local recipients",
        "dnsbl": "no equivalent: hikyaku asks no DNS block lists",
        "enhdnsbl": "no equivalent: hikyaku asks no DNS block lists",
        "rbl": "no equivalent: hikyaku asks no DNS block lists",
        "rhsbl": "no equivalent: hikyaku asks no DNS block lists",
        "nullclient": "no equivalent: set smart_host, and make local mail go there with a mailertable or aliases",
        "lookupdotdomain": "no equivalent: access lookups of .domain keys",
        "virtuser_entire_domain": "no equivalent: virtusertable @domain entries match that domain only",
        "authinfo": "no equivalent: smtp-client does not log in to other servers",
        "msp": "no equivalent: this is a submit.mc feature; the sendmail command needs no configuration",
    ]

    mutating func feature(_ call: MCMacroCall, _ origin: Origin) {
        let name = call.argument(0).trimmingSpace
        if let key = Self.mapFeatures[name] {
            mapFeature(name, key: key, call, origin)
            return
        }
        switch name {
        case "use_cw_file", "use_ct_file":
            classFileFeatures[name] = origin
        case "delay_checks":
            sawDelayChecks = true
            let argument = call.argument(1).trimmingSpace.lowercased()
            if argument.hasPrefix("h") {
                set("smtpd_delay_checks", "yes", origin)
                notTranslated(origin, "hater: hikyaku's delay_checks works as with friend (Spam:FRIEND entries), not hater (Spam:HATER)")
            } else {
                set("smtpd_delay_checks", "yes", origin, note: argument.hasPrefix("f")
                    ? "with friend: a Spam:FRIEND recipient skips the client and sender checks"
                    : "hikyaku honours Spam:FRIEND entries as with friend; without it sendmail does not")
            }
        case "greet_pause":
            sawGreetPause = true
            let argument = call.argument(1).trimmingSpace
            let note = "hikyaku reads no GreetPause: entries from the access map, and never pauses for 127.0.0.1 and ::1"
            if argument.isEmpty {
                set("smtpd_greet_pause", "0s", origin, note: "without a time sendmail pauses only for GreetPause: entries; " + note)
            } else if let milliseconds = Int(argument), milliseconds >= 0 {
                // hikyaku counts whole seconds; a pause never rounds to none.
                let seconds = milliseconds == 0 ? 0 : max(1, (milliseconds + 500) / 1000)
                set("smtpd_greet_pause", "\(seconds)s", origin,
                    note: (milliseconds % 1000 == 0 ? "" : "\(milliseconds) ms rounded to whole seconds; ") + note)
            } else {
                notTranslated(origin, "cannot read the time '\(argument)' (milliseconds)")
            }
        case "no_default_msa":
            noDefaultMSA = origin
        case "always_add_domain":
            remark(origin, "hikyaku always completes the addresses of local mail with myorigin")
        case "allmasquerade", "masquerade_envelope":
            masqueradeFeatures.append((name, origin))
        case "nocanonify":
            remark(origin, "hikyaku never canonifies host names through DNS")
        case "accept_unresolvable_domains":
            remark(origin, "hikyaku does not look up the sender's domain in DNS")
        case _ where Self.featureReasons[name] != nil:
            notTranslated(origin, Self.featureReasons[name]!)
        default:
            notTranslated(origin, "FEATURE(`\(name)'): no equivalent in hikyaku")
        }
    }

    mutating func mapFeature(_ name: String, key: String, _ call: MCMacroCall, _ origin: Origin) {
        let specification = call.argument(1).trimmingSpace
        var path = mailSettingsDirectory + (name == "access_db" ? "access" : name)
        if !specification.isEmpty {
            guard let (type, given) = Self.mapPath(specification), given.hasPrefix("/") else {
                notTranslated(origin, "cannot find an absolute file name in '\(specification)'")
                return
            }
            guard ["hash", "btree"].contains(type) else {
                notTranslated(origin, "hikyaku reads maps from text and Berkeley DB hash or btree files, not \(type)")
                return
            }
            path = given
        }
        guard path.hasPrefix("/") else {
            notTranslated(origin, "the file, \(path), is not an absolute file name (a name defined outside this file?)")
            return
        }
        var note: String?
        if name == "access_db" {
            for option in call.arguments.dropFirst(2).map(\.trimmingSpace) where !option.isEmpty {
                switch option {
                case "skip":
                    note = "SKIP values are understood"
                case "lookupdotdomain":
                    notTranslated(origin, "lookupdotdomain: no equivalent (access keys .domain)")
                case "relaytofulladdress":
                    notTranslated(origin, "relaytofulladdress: no equivalent; To:user@domain RELAY grants nothing in hikyaku")
                default:
                    notTranslated(origin, "\(option): unknown access_db option")
                }
            }
        }
        set(key, path, origin, note: note)
    }
}
