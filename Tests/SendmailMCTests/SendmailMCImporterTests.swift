import HikyakuConfig
import Testing
@testable import SendmailMC

/// A sendmail.mc that has everything but `text` of its own: no listening
/// or check settings are implied beyond what `text` says.
func translate(_ text: String, prefix: String = "FEATURE(`no_default_msa')dnl\nFEATURE(`delay_checks', `friend')dnl\nFEATURE(`greet_pause', `1000')dnl\nDAEMON_OPTIONS(`Name=MTA')dnl\n") throws -> MCTranslation {
    try SendmailMCImporter.translate(prefix + text, file: "t.mc")
}

/// The reasons given for what was not translated, by the macro's text.
func reasons(_ translation: MCTranslation) -> [String: String] {
    Dictionary(translation.untranslated.map { ($0.origin.text, $0.reason) }, uniquingKeysWith: { $0 + " | " + $1 })
}

@Suite("sendmail.mc translated into hikyaku.conf")
struct SendmailMCImporterTests {
    @Test("DAEMON_OPTIONS: ports by name and number, Addr, IPv6, M=a and M=s", arguments: [
        ("DAEMON_OPTIONS(`Family=inet, Name=MTA-v4, Port=smtp, Addr=127.0.0.1')", "smtpd_listen", "127.0.0.1:25"),
        ("DAEMON_OPTIONS(`Port=smtp, Name=MTA')", "smtpd_listen", "0.0.0.0:25"),
        ("DAEMON_OPTIONS(`Port=2525, Name=MTA, Addr=192.0.2.1')", "smtpd_listen", "192.0.2.1:2525"),
        ("DAEMON_OPTIONS(`Family=inet6, Name=MTA-v6, Port=smtp, Addr=::1')", "smtpd_listen", "[::1]:25"),
        ("DAEMON_OPTIONS(`Family=inet6, Name=MTA-v6, Port=smtp')", "smtpd_listen", "[::]:25, 0.0.0.0:25"),
        ("DAEMON_OPTIONS(`Port=submission, Name=MSA, M=Ea')", "submission_listen", "0.0.0.0:587"),
        ("DAEMON_OPTIONS(`Family=inet,  Name=MSP-v4, Port=submission, M=Ea, Addr=127.0.0.1')", "submission_listen", "127.0.0.1:587"),
        ("DAEMON_OPTIONS(`Port=smtps, Name=TLSMTA, M=sa')", "smtps_listen", "0.0.0.0:465"),
        ("DAEMON_OPTIONS(`Port=587, Name=MSA, M=E')", "smtpd_listen", "0.0.0.0:587"),
    ])
    func daemonOptions(line: String, key: String, value: String) throws {
        let translation = try translate(line + "dnl\n", prefix: "FEATURE(`no_default_msa')dnl\n")
        #expect(translation.setting[key] == value)
        // The macro as written, white space runs folded.
        #expect(translation.settings.first { $0.key == key }?.origins.first?.text == line.replacing("  ", with: " "))
        #expect(translation.settings.first { $0.key == key }?.origins.first?.source == MCSource(file: "t.mc", line: 2))
        if key != "smtpd_listen" {
            #expect(translation.setting["smtpd_listen"] == "")
        }
    }

    @Test("no DAEMON_OPTIONS: port 25 of every IPv4 address, and the MSA on 587 unless no_default_msa")
    func daemonDefaults() throws {
        let bare = try translate("MAILER(`smtp')dnl\n", prefix: "")
        #expect(bare.setting["smtpd_listen"] == "0.0.0.0:25, 0.0.0.0:587")
        #expect(bare.setting["submission_listen"] == nil)
        let noMSA = try translate("FEATURE(`no_default_msa')dnl\n", prefix: "")
        #expect(noMSA.setting["smtpd_listen"] == "0.0.0.0:25")
        #expect(noMSA.remarks.map(\.origin.text) == ["FEATURE(`no_default_msa')"])
        // Both DAEMON_OPTIONS lines commented out, as the tutorial does.
        let tutorial = try translate("""
            FEATURE(`no_default_msa')dnl
            dnl DAEMON_OPTIONS(`Family=inet,  Name=MTA-v4, Port=smtp, Addr=127.0.0.1')dnl
            dnl DAEMON_OPTIONS(`Family=inet,  Name=MSP-v4, Port=submission, M=Ea, Addr=127.0.0.1')dnl

            """, prefix: "")
        #expect(tutorial.setting["smtpd_listen"] == "0.0.0.0:25")
        #expect(tutorial.setting["submission_listen"] == nil)
        // An MSA of the file's own on 587 and no other daemon: nothing on 25.
        let msa = try translate("DAEMON_OPTIONS(`Port=submission, Name=MSA, M=Ea')dnl\n", prefix: "")
        #expect(msa.setting["submission_listen"] == "0.0.0.0:587")
        #expect(msa.setting["smtpd_listen"] == "")
    }

    @Test("DAEMON_OPTIONS that cannot be translated are listed")
    func daemonProblems() throws {
        let translation = try translate("""
            DAEMON_OPTIONS(`Family=local, Name=MTA-local, Addr=/var/run/sendmail.sock')dnl
            DAEMON_OPTIONS(`Port=smtps, Name=TLSMTA, M=s')dnl
            DAEMON_OPTIONS(`Port=2526, Name=MTA2, Addr=mail.example.jp')dnl
            DAEMON_OPTIONS(`Port=2527, Name=MTA3, M=h')dnl
            """, prefix: "FEATURE(`no_default_msa')dnl\n")
        let why = reasons(translation)
        #expect(why["DAEMON_OPTIONS(`Family=local, Name=MTA-local, Addr=/var/run/sendmail.sock')"]?.hasPrefix("Family=local") == true)
        #expect(why["DAEMON_OPTIONS(`Port=smtps, Name=TLSMTA, M=s')"]?.hasPrefix("M=a is not set") == true)
        #expect(why["DAEMON_OPTIONS(`Port=2526, Name=MTA2, Addr=mail.example.jp')"]?.hasPrefix("Addr=mail.example.jp") == true)
        #expect(why["DAEMON_OPTIONS(`Port=2527, Name=MTA3, M=h')"]?.hasPrefix("M=h") == true)
        #expect(translation.setting["smtps_listen"] == "0.0.0.0:465")
        #expect(translation.setting["smtpd_listen"] == "0.0.0.0:2527")
        #expect(translation.exitStatus == 1)
    }

    @Test("defines with a key of their own", arguments: [
        ("define(`confMAX_MESSAGE_SIZE', `52428800')", "message_size_limit", "52428800"),
        ("define(`confMAX_RCPTS_PER_MESSAGE', `100')", "smtpd_recipient_limit", "100"),
        ("define(`confDOMAIN_NAME', `mail.example.jp')", "myhostname", "mail.example.jp"),
        ("define(`ALIAS_FILE', `/etc/mail/aliases')", "alias_file", "/etc/mail/aliases"),
        ("define(`ALIAS_FILE', `hash:/etc/aliases')", "alias_file", "/etc/aliases"),
        ("define(`confTO_QUEUEWARN', `4h')", "delay_warning_time", "4h"),
        ("define(`confTO_QUEUERETURN', `5d')", "maximal_queue_lifetime", "5d"),
        ("define(`confTO_QUEUERETURN', `7')", "maximal_queue_lifetime", "7d"),
        ("define(`confTO_COMMAND', `1h30m')", "smtpd_timeout", "90m"),
        ("define(`confTO_CONNECT', `45s')", "smtp_connect_timeout", "45s"),
        ("define(`confTO_MAIL', `2')", "smtp_mail_timeout", "2m"),
        ("define(`confTO_DATAFINAL', `1h')", "smtp_data_done_timeout", "1h"),
        ("define(`confMAX_DAEMON_CHILDREN', `40')", "smtpd_session_limit", "40"),
        ("define(`confDEF_USER_ID', `mail:mail')", "default_privs", "mail"),
        ("define(`confSERVER_CERT', `/etc/mail/tls/server.crt')", "smtpd_tls_cert_file", "/etc/mail/tls/server.crt"),
        ("define(`confSERVER_KEY', `/etc/mail/tls/server.key')", "smtpd_tls_key_file", "/etc/mail/tls/server.key"),
        ("define(`confCACERT', `/etc/mail/tls/ca.crt')", "smtp_tls_CAfile", "/etc/mail/tls/ca.crt"),
        ("define(`confSMTP_LOGIN_MSG', `$j ESMTP ready')", "smtpd_banner", "$myhostname ESMTP ready"),
        ("define(`confHELO_NAME', `out.example.jp')", "smtp_helo_name", "out.example.jp"),
        ("define(`confCR_FILE', `-o /etc/mail/relay-domains %[^\\#]')", "relay_domains_file", "/etc/mail/relay-domains"),
        ("define(`confMIN_QUEUE_AGE', `15m')", "minimal_backoff_time", "15m"),
        ("define(`confTO_INITIAL', `5m')", "smtp_helo_timeout", "5m"),
        ("define(`confTO_HELO', `10m')", "smtp_helo_timeout", "10m"),
        ("define(`confTO_RCPT', `1h')", "smtp_rcpt_timeout", "1h"),
        ("define(`confTO_DATAINIT', `5m')", "smtp_data_init_timeout", "5m"),
        ("define(`confTO_QUIT', `2m')", "smtp_quit_timeout", "2m"),
        ("define(`confTO_RSET', `1m')", "smtp_quit_timeout", "1m"),
        ("define(`confTO_QUEUEWARN_NORMAL', `1')", "delay_warning_time", "1h"),
        ("define(`confTO_QUEUERETURN_NORMAL', `3d')", "maximal_queue_lifetime", "3d"),
        ("define(`SMART_HOST', `[relay.example.net]')", "smart_host", "[relay.example.net]"),
        ("define(`SMART_HOST', `esmtp:[relay.example.net]')", "smart_host", "[relay.example.net]"),
        ("define(`SMART_HOST', `relay.example.net')", "smart_host", "relay.example.net"),
        ("SMART_HOST(`smtp:relay.example.net')", "smart_host", "relay.example.net"),
        ("MASQUERADE_AS(`example.jp')", "myorigin", "example.jp"),
        ("VIRTUSER_DOMAIN(`virtual.example.com other.example.com')", "virtuser_domains", "virtual.example.com, other.example.com"),
        ("RELAY_DOMAIN_FILE(`-o /etc/mail/relay-domains')", "relay_domains_file", "/etc/mail/relay-domains"),
    ])
    func defines(line: String, key: String, value: String) throws {
        let translation = try translate(line + "dnl\n")
        #expect(translation.setting[key] == value)
        #expect(translation.untranslated.filter(\.changesBehaviour).map(\.origin.text) == [])
        #expect(translation.exitStatus == 0)
    }

    @Test("the smart host's port comes from RELAY_MAILER_ARGS")
    func smartHostPort() throws {
        let translation = try translate("""
            define(`SMART_HOST', `[relay.example.net]')dnl
            define(`RELAY_MAILER_ARGS', `TCP $h 587')dnl
            define(`ESMTP_MAILER_ARGS', `TCP $h 2525')dnl

            """)
        #expect(translation.setting["smart_host"] == "[relay.example.net]:587")
        #expect(reasons(translation)["define(`ESMTP_MAILER_ARGS', `TCP $h 2525')"]?.contains("mailertable") == true)
    }

    @Test("features with a key of their own", arguments: [
        ("FEATURE(`access_db', , `skip')", "access_map", "/etc/mail/access"),
        ("FEATURE(`access_db', `hash -T<TMPF> -o /srv/mail/access')", "access_map", "/srv/mail/access"),
        ("FEATURE(`mailertable', `hash -o /etc/mail/mailertable.db')", "mailertable_map", "/etc/mail/mailertable"),
        ("FEATURE(`virtusertable')", "virtusertable_map", "/etc/mail/virtusertable"),
        ("FEATURE(`domaintable', `btree /srv/domaintable')", "domaintable_map", "/srv/domaintable"),
        ("FEATURE(`use_cw_file')", "local_host_names_file", "/etc/mail/local-host-names"),
        ("FEATURE(`use_ct_file')", "trusted_users_file", "/etc/mail/trusted-users"),
        ("FEATURE(`greet_pause', `5000')", "smtpd_greet_pause", "5s"),
        ("FEATURE(`greet_pause', `1500')", "smtpd_greet_pause", "2s"),
        ("FEATURE(`greet_pause')", "smtpd_greet_pause", "0s"),
        ("FEATURE(`delay_checks')", "smtpd_delay_checks", "yes"),
        ("define(`confPRIVACY_FLAGS', `authwarnings,novrfy,noexpn')", "disable_vrfy_command", "yes"),
    ])
    func features(line: String, key: String, value: String) throws {
        let translation = try translate(line + "dnl\n")
        #expect(translation.setting[key] == value)
        #expect(translation.exitStatus == 0)
    }

    @Test("use_cw_file reads the file confCW_FILE names; confCW_FILE alone does nothing")
    func classFiles() throws {
        let both = try translate("define(`confCW_FILE', `-o /srv/mail/local-host-names %[^\\#]')dnl\nFEATURE(`use_cw_file')dnl\n")
        #expect(both.setting["local_host_names_file"] == "/srv/mail/local-host-names")
        let alone = try translate("define(`confCW_FILE', `/srv/mail/local-host-names')dnl\n")
        #expect(alone.setting["local_host_names_file"] == nil)
        #expect(alone.untranslated.map(\.changesBehaviour) == [false])
    }

    @Test("without delay_checks and greet_pause sendmail checks at MAIL and does not pause")
    func absent() throws {
        let translation = try translate("DAEMON_OPTIONS(`Name=MTA')dnl\n", prefix: "FEATURE(`no_default_msa')dnl\n")
        #expect(translation.setting["smtpd_delay_checks"] == "no")
        #expect(translation.setting["smtpd_greet_pause"] == "0s")
    }

    @Test("privacy flags: set, already so, or listed")
    func privacy() throws {
        let translation = try translate("define(`confPRIVACY_FLAGS', `goaway,restrictmailq')dnl\n")
        #expect(translation.setting["disable_vrfy_command"] == "yes")
        let listed = translation.untranslated.map(\.reason).map { String($0.prefix(while: { $0 != ":" })) }
        #expect(listed == ["restrictmailq", "noreceipts", "nobodyreturn"])
        #expect(translation.remarks.filter { $0.origin.text.hasPrefix("define") }.count == 1)
        #expect(translation.exitStatus == 1)
    }

    @Test("AUTH mechanisms: AUTH offered on port 25 too; only PLAIN and LOGIN")
    func auth() throws {
        let translation = try translate("""
            DAEMON_OPTIONS(`Port=submission, Name=MSA, M=Ea')dnl
            TRUST_AUTH_MECH(`LOGIN PLAIN')dnl
            define(`confAUTH_MECHANISMS', `LOGIN PLAIN CRAM-MD5')dnl

            """)
        #expect(translation.setting["smtpd_sasl_auth_enable"] == "yes")
        #expect(translation.setting["submission_listen"] == "0.0.0.0:587")
        #expect(reasons(translation)["define(`confAUTH_MECHANISMS', `LOGIN PLAIN CRAM-MD5')"]?.contains("CRAM-MD5") == true)
    }

    @Test("masquerading: MASQUERADE_AS is myorigin; the features that go with it are understood")
    func masquerade() throws {
        let translation = try translate("""
            FEATURE(`always_add_domain')dnl
            MASQUERADE_AS(`mail.example.jp')dnl
            FEATURE(`allmasquerade')dnl
            FEATURE(`masquerade_envelope')dnl
            MASQUERADE_DOMAIN(`example.jp')dnl

            """)
        #expect(translation.setting["myorigin"] == "mail.example.jp")
        #expect(translation.remarks.filter { !$0.origin.text.contains("no_default_msa") }.count == 3)
        #expect(translation.untranslated.map(\.origin.text) == ["MASQUERADE_DOMAIN(`example.jp')"])
        let without = try translate("FEATURE(`masquerade_envelope')dnl\n")
        #expect(without.untranslated.map(\.changesBehaviour) == [false])
    }

    @Test("what has no equivalent is listed with its line and exit status 1", arguments: [
        "FEATURE(`relay_hosts_only')", "FEATURE(`relay_entire_domain')", "FEATURE(`relay_based_on_MX')",
        "FEATURE(`promiscuous_relay')", "FEATURE(`smrsh')", "FEATURE(`local_procmail')", "FEATURE(`redirect')",
        "FEATURE(`nouucp', `reject')", "FEATURE(`conncontrol', `nodelay', `terminate')", "FEATURE(`dnsbl', `zen.example.org')",
        "define(`confREFUSE_LA', `12')", "define(`confQUEUE_LA', `8')", "define(`confBAD_RCPT_THROTTLE', `3')",
        "define(`confCONNECTION_RATE_THROTTLE', `15')", "define(`confDELIVERY_MODE', `queueonly')",
        "define(`confMAX_RCPTS_PER_MESSAGE', `0')", "define(`MAIL_HUB', `hub.example.jp')", "MAILER(`procmail')",
        "CLIENT_OPTIONS(`Family=inet, Addr=192.0.2.1')", "LOCAL_DOMAIN(`example2009.jp')", "NO_SUCH_MACRO(`x')",
        "define(`confCLIENT_CERT', `/etc/mail/tls/client.crt')", "FEATURE(`delay_checks', `hater')",
        "FEATURE(`access_db', `ldap -1 -v sendmailMTAMapValue')", "DOMAIN(`generic')",
        "FEATURE(`mailertable', `hash -o 'ORACLE_RUN`/mailertable')", "define(`ALIAS_FILE', ORACLE_RUN`/aliases')",
    ])
    func untranslated(line: String) throws {
        let translation = try translate(line + "dnl\n")
        let item = translation.untranslated.first { $0.origin.text == line }
        #expect(item?.changesBehaviour == true)
        #expect(item?.origin.source == MCSource(file: "t.mc", line: 5))
        #expect(translation.exitStatus == 1)
    }

    @Test("macros understood with nothing to set", arguments: [
        "TRUST_AUTH_MECH(`LOGIN PLAIN')", "define(`confAUTH_OPTIONS', `A p')", "define(`confTLS_SRV_OPTIONS', `V')",
        "define(`confCACERT_PATH', `/etc/ssl/certs')", "define(`confDELIVERY_MODE', `background')",
        "FEATURE(`nocanonify')", "FEATURE(`accept_unresolvable_domains')", "FEATURE(`always_add_domain')",
        "define(`confFORWARD_PATH', `$z/.forward')", "define(`confPRIVACY_FLAGS', `authwarnings,noexpn,noetrn')",
    ])
    func remarks(line: String) throws {
        let translation = try translate(line + "dnl\n")
        #expect(translation.remarks.map(\.origin.text).contains(line))
        #expect(translation.untranslated.isEmpty)
        #expect(translation.rendered().contains("# from t.mc:5: \(line)\n#   nothing to set: "))
    }

    @Test("boilerplate is listed as ignored and leaves the exit status 0", arguments: [
        "divert(-1)", "divert(0)", "VERSIONID(`$Id: sendmail.mc $')", "OSTYPE(`debian')", "DOMAIN(`debian-mta')",
        "include(`/usr/share/sendmail/cf/m4/cf.m4')", "MAILER(`local')", "MAILER(`smtp')", "MAILER_DEFINITIONS",
        "define(`_USE_ETC_MAIL_')", "undefine(`confHOST_STATUS_DIRECTORY')", "define(`confLOG_LEVEL', `9')",
        "define(`QUEUE_DIR', `/var/spool/mqueue')",
    ])
    func ignored(line: String) throws {
        // A bare name takes no dnl: MAILER_DEFINITIONSdnl would be one name.
        let translation = try translate(line + (line.contains("(") ? "dnl\n" : "\n"))
        #expect(translation.untranslated.map(\.origin.text) == [line])
        #expect(translation.untranslated.first?.changesBehaviour == false)
        #expect(translation.exitStatus == 0)
    }

    @Test("raw sendmail.cf lines are listed one by one")
    func rawLines() throws {
        let translation = try translate("LOCAL_RULESETS\nSLocal_check_rcpt\n# a comment\nR$*\t$#error $: 550 no\nMAILER(`local')dnl\n")
        let raw = translation.untranslated.filter(\.changesBehaviour).map(\.origin)
        #expect(raw.map(\.text) == ["SLocal_check_rcpt", "R$*\t$#error $: 550 no"])
        #expect(raw.map { $0.source?.line } == [6, 8])
    }

    @Test("the rendered fragment names each macro's line, comments defaults out and loads without unknown keys")
    func rendered() throws {
        let translation = try translate("""
            define(`confMAX_MESSAGE_SIZE', `52428800')dnl
            FEATURE(`access_db', , `skip')dnl
            FEATURE(`smrsh')dnl

            """)
        let text = translation.rendered()
        #expect(text.contains("# from t.mc:5: define(`confMAX_MESSAGE_SIZE', `52428800')\nmessage_size_limit = 52428800\n"))
        #expect(text.contains("# from t.mc:6: FEATURE(`access_db', , `skip')\n#   SKIP values are understood\n# access_map = /etc/mail/access\t(hikyaku's default)\n"))
        #expect(text.contains("# Not translated: 1 (1 of them change what the mail system does;\n"))
        #expect(text.contains("#   t.mc:7: FEATURE(`smrsh')\n#       no equivalent: commands in aliases"))
        let config = try Configuration(text: text, path: "imported.conf")
        #expect(config.unknownKeys.isEmpty)
        #expect(config.size("message_size_limit") == 52_428_800)
        #expect(config.line(of: "access_map") == 0)
    }
}
