/// One configuration key: its name, default, kind and meaning. The table in
/// ``ConfigParameter/all`` is the single place keys are defined; hikyaku.conf(5)
/// is checked against it.
public struct ConfigParameter: Sendable {
    public enum Kind: String, Sendable {
        case string, integer, time, size, boolean, list, path
    }

    public let name: String
    public let defaultValue: String
    public let kind: Kind
    /// One sentence for the man page and `hikyaku config show`.
    public let summary: String

    public init(_ name: String, _ defaultValue: String, _ kind: Kind, _ summary: String) {
        self.name = name
        self.defaultValue = defaultValue
        self.kind = kind
        self.summary = summary
    }
}

extension ConfigParameter {
    /// Every key hikyaku knows. `myhostname`'s empty default is replaced by the
    /// host's name when the configuration is loaded.
    public static let all: [ConfigParameter] = [
        // Identity and paths
        ConfigParameter("myhostname", "", .string,
            "The fully qualified name of this host, used in the SMTP greeting, Received: headers and Message-ID. Empty means the system host name."),
        ConfigParameter("myorigin", "$myhostname", .string,
            "The domain that bare local parts given to smtpd (RCPT TO:<postmaster>) are completed with."),
        ConfigParameter("queue_directory", "/var/spool/hikyaku", .path,
            "The spool: queue directories, service sockets and the chroot of the unprivileged daemons."),
        ConfigParameter("daemon_directory", "/usr/lib/hikyaku", .path,
            "Where the master finds the programs it runs (smtpd, cleanup, qmgr, local, aliasd, pickup, showq, smtp-client) and the hikyaku-drop helper."),
        ConfigParameter("mail_owner", "hikyaku", .string,
            "The unprivileged user that owns the queue and runs every daemon except master and local."),
        ConfigParameter("setgid_group", "hikyaku-drop", .string,
            "The group of the setgid hikyaku-drop helper, which alone may write to maildrop/ and wake pickup."),
        ConfigParameter("maillog_file", "", .path,
            "Write the mail log to this file; empty: the journal (with QUEUE_ID and SYSLOG_IDENTIFIER fields) when run by systemd, else syslog's mail facility; /dev/stderr is allowed."),
        ConfigParameter("syslog_name", "hikyaku", .string,
            "The prefix of every log line's program name (hikyaku/smtpd)."),
        ConfigParameter("debug_programs", "", .list,
            "Programs that log at debug level too (like -v in Postfix's master.cf), for example pickup smtpd; hikyaku reload applies a change."),

        // Maps
        ConfigParameter("alias_file", "/etc/aliases", .path,
            "The sendmail-format aliases file."),
        ConfigParameter("local_host_names_file", "/etc/mail/local-host-names", .path,
            "Domains this host receives mail for, one per line (sendmail's class w file); $myhostname, its first label, localhost and [127.0.0.1] are always local."),
        ConfigParameter("relay_domains_file", "/etc/mail/relay-domains", .path,
            "Domains (and their subdomains) mail may be relayed to and whose hosts may relay, one per line (sendmail's class R file)."),
        ConfigParameter("trusted_users_file", "/etc/mail/trusted-users", .path,
            "Users who may set another sender with sendmail -f without a warning header (sendmail's class t file)."),
        ConfigParameter("access_map", "/etc/mail/access", .path,
            "sendmail's access map: the text source; access.db beside it is used while it is newer."),
        ConfigParameter("virtusertable_map", "/etc/mail/virtusertable", .path,
            "sendmail's virtusertable: virtual addresses and domains to real addresses."),
        ConfigParameter("mailertable_map", "/etc/mail/mailertable", .path,
            "sendmail's mailertable: the mailer and host for a domain and its subdomains."),
        ConfigParameter("domaintable_map", "/etc/mail/domaintable", .path,
            "sendmail's domaintable: old domain names rewritten to new ones."),
        ConfigParameter("virtuser_domains", "", .list,
            "Domains that are not local but whose addresses virtusertable handles (sendmail's VIRTUSER_DOMAIN)."),
        ConfigParameter("smtpd_delay_checks", "yes", .boolean,
            "Decide client and sender access at RCPT, as sendmail's FEATURE(delay_checks, friend) does (Debian's default); no: at MAIL."),

        // Local delivery
        ConfigParameter("mail_spool_directory", "/var/mail", .path,
            "Where mbox mailboxes are kept, one file per user."),
        ConfigParameter("home_mailbox", "", .string,
            "A path relative to the user's home to deliver to instead of the mail spool; a trailing slash means Maildir (Maildir/)."),
        ConfigParameter("local_process_limit", "4", .integer,
            "How many local delivery processes run, and so how many local deliveries happen at once."),
        ConfigParameter("local_destination_concurrency_limit", "2", .integer,
            "How many deliveries to one local recipient's mbox happen at once (they wait for its lock anyway); with a Maildir home_mailbox, deliveries to one user do not lock each other and up to local_process_limit run at once."),
        ConfigParameter("default_privs", "nobody", .string,
            "The user that file and command targets of a root-owned aliases or include file run as; never root."),
        ConfigParameter("command_time_limit", "1000s", .time,
            "How long a command named in an alias or .forward may run before it is killed and the delivery deferred."),
        ConfigParameter("mailbox_lock_timeout", "60s", .time,
            "How long local waits for a mailbox lock before deferring the delivery."),

        // SMTP server
        ConfigParameter("smtpd_listen", "127.0.0.1:25", .list,
            "Addresses smtpd listens on, as host:port or [ipv6]:port, separated by commas or spaces."),
        ConfigParameter("submission_listen", "", .list,
            "Addresses for mail submission (port 587, RFC 6409): STARTTLS is required before MAIL, like sendmail's DAEMON_OPTIONS(Port=submission, Name=MSA, M=Ea); empty: none."),
        ConfigParameter("smtps_listen", "", .list,
            "Addresses for submission over implicit TLS (port 465, RFC 8314): TLS from the first byte; empty: none."),
        ConfigParameter("smtpd_tls_cert_file", "/etc/ssl/certs/ssl-cert-snakeoil.pem", .path,
            "smtpd's certificate chain, PEM (Debian's ssl-cert snakeoil pair by default); read before the chroot, again on reload."),
        ConfigParameter("smtpd_tls_key_file", "/etc/ssl/private/ssl-cert-snakeoil.key", .path,
            "The private key of smtpd_tls_cert_file, PEM."),
        ConfigParameter("smtpd_tls_cipherlist", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305", .list,
            "The TLS 1.2 cipher suites smtpd accepts (the client's preference decides among them), by OpenSSL or IANA name; the default is ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only. TLS 1.3 always uses its own fixed set."),
        ConfigParameter("smtpd_tls_security_level", "may", .string,
            "none: no STARTTLS; may: STARTTLS offered on port 25; encrypt: MAIL refused on port 25 until STARTTLS (not for a public MX). Submission always requires TLS."),
        ConfigParameter("smtpd_sasl_auth_enable", "no", .boolean,
            "Offer AUTH (over TLS) on the smtpd_listen ports too; submission and smtps always offer and require it."),
        ConfigParameter("smtpd_sasl_path", "private/auth", .string,
            "Dovecot's authentication socket, relative to queue_directory (smtpd is chrooted there): Dovecot's 'service auth' must put a unix_listener at this place."),
        ConfigParameter("smtpd_sender_login_check", "yes", .boolean,
            "An authenticated client may only use MAIL FROM addresses that are its own (the user name, or a local address that is delivered to it); no: any."),
        ConfigParameter("smtpd_client_auth_failure_limit", "10", .integer,
            "Failed AUTH attempts from one client address within 10 minutes after which its AUTH is refused without asking Dovecot; a session ends after 3 failures."),
        ConfigParameter("smtpd_session_limit", "10000", .integer,
            "Sessions one smtpd process serves at once; a client beyond it gets 421 4.7.0 and is disconnected."),
        ConfigParameter("smtpd_client_connection_count_limit", "50", .integer,
            "Sessions one client address may have open at once (127.0.0.1 and ::1 are never limited)."),
        ConfigParameter("smtpd_client_connection_rate_limit", "0", .integer,
            "New sessions per minute from one client address; 0: no limit."),
        ConfigParameter("smtpd_client_message_rate_limit", "0", .integer,
            "Messages per minute from one client address (counted at their first recipient); 0: no limit."),
        ConfigParameter("smtpd_client_recipient_rate_limit", "0", .integer,
            "Recipients per minute from one client address; 0: no limit."),
        ConfigParameter("smtpd_data_time_limit", "600s", .time,
            "The longest a client may take to send one message after 354, however steadily it sends; then 421 and the message is dropped."),
        ConfigParameter("smtpd_greet_pause", "1s", .time,
            "How long smtpd waits before its greeting; a client that speaks first gets 554 5.5.0 and is disconnected (sendmail's greet_pause). 127.0.0.1 and ::1 are greeted at once; 0: no pause."),
        ConfigParameter("smtpd_reject_unauth_pipelining", "yes", .boolean,
            "A client that sends commands ahead of time where RFC 2920 does not allow it (after DATA, after HELO or EHLO, or without EHLO's PIPELINING) gets 503 5.5.0 and is disconnected; authenticated clients and 127.0.0.1, ::1 are exempt."),
        ConfigParameter("strict_rfc821_envelopes", "no", .boolean,
            "yes: MAIL FROM and RCPT TO must be exactly FROM:<address> (no space around the colon, brackets required); no: spaces and bare addresses are accepted, as Postfix and sendmail accept them."),
        ConfigParameter("smtpd_hosts_allow_file", "/etc/hosts.allow", .string,
            "TCP wrappers (hosts_access(5)): rules for the daemon names smtpd and sendmail are read from this file and smtpd_hosts_deny_file; a denied client gets 554 5.7.1 at connect. Empty: not consulted."),
        ConfigParameter("smtpd_hosts_deny_file", "/etc/hosts.deny", .string,
            "The deny file of TCP wrappers, consulted after smtpd_hosts_allow_file; empty: not consulted."),
        ConfigParameter("smtpd_process_limit", "1", .integer,
            "How many smtpd processes share the listening sockets; each serves many sessions."),
        ConfigParameter("smtpd_banner", "$myhostname ESMTP hikyaku", .string,
            "The text after 220 in the greeting."),
        ConfigParameter("message_size_limit", "10240000", .size,
            "The largest message accepted, in bytes, announced with SIZE; 0 means no limit."),
        ConfigParameter("smtpd_recipient_limit", "1000", .integer,
            "Recipients accepted per message; more get 452 4.5.3."),
        ConfigParameter("smtpd_hard_error_limit", "20", .integer,
            "Error replies after which the session is ended with 421 4.7.0."),
        ConfigParameter("smtpd_timeout", "300s", .time,
            "How long a client may take to send a complete command (bytes that trickle in without ending the line do not extend it), or to send more DATA, before 421."),
        ConfigParameter("smtpd_forbid_bare_newline", "reject", .string,
            "reject: a bare LF or CR in DATA fails the message with 550 5.5.2 and closes the session; normalize: a bare LF ends a line. Neither ever ends the data."),
        ConfigParameter("disable_vrfy_command", "no", .boolean,
            "Refuse VRFY with 502 instead of answering 252."),
        ConfigParameter("smtpd_client_lookup_timeout", "2s", .time,
            "How long smtpd waits for the client's reverse DNS name before calling it unknown; loopback clients are never looked up."),

        // Remote delivery
        ConfigParameter("dns_resolver", "", .string,
            "The DNS server for MX and address lookups, as 127.0.0.1:5353, [::1]:53 or 192.0.2.1 (port 53); empty means the name servers in /etc/resolv.conf, read at start-up."),
        ConfigParameter("dns_timeout", "5s", .time,
            "How long a DNS query waits for a reply from one server before asking the next; at least 1 second."),
        ConfigParameter("dns_attempts", "2", .integer,
            "How many rounds over the DNS servers a lookup makes before it fails for the moment and the delivery is deferred; at least 1."),

        // Queue manager
        ConfigParameter("queue_run_delay", "300s", .time,
            "How often the deferred queue is scanned for messages due a retry."),
        ConfigParameter("minimal_backoff_time", "300s", .time,
            "The shortest time a deferred message waits before its next try."),
        ConfigParameter("maximal_backoff_time", "3600s", .time,
            "The longest time a deferred message waits before its next try."),
        ConfigParameter("maximal_queue_lifetime", "5d", .time,
            "How long a message may stay in the queue before it is returned as undeliverable."),
        ConfigParameter("qmgr_message_active_limit", "20000", .integer,
            "The most messages the queue manager holds in memory at once."),
        ConfigParameter("delay_warning_time", "0h", .time,
            "After how long a sender is told that mail is still waiting (a DSN with Action: delayed, once per recipient); 0 means never. 4h is the usual value."),
        ConfigParameter("initial_destination_concurrency", "5", .integer,
            "Deliveries at once to a remote destination that has not proven itself; it grows while deliveries succeed."),
        ConfigParameter("default_destination_concurrency_limit", "20", .integer,
            "The most deliveries at once to one remote destination."),
        ConfigParameter("smtp_destination_recipient_limit", "50", .integer,
            "The most recipients of one message sent to one destination in one SMTP transaction."),
        ConfigParameter("smtp_delivery_limit", "100", .integer,
            "The most remote deliveries in progress at once, over every destination."),

        // SMTP client
        ConfigParameter("smart_host", "", .string,
            "Send all mail for other domains that mailertable does not route to this host, like sendmail's SMART_HOST: [relay.example.net]:587 (no MX lookup) or relay.example.net (MX lookup)."),
        ConfigParameter("smtp_helo_name", "$myhostname", .string,
            "The name smtp-client gives in EHLO and HELO."),
        ConfigParameter("smtp_tls_security_level", "may", .string,
            "none: never STARTTLS; may: STARTTLS when offered, plain text when not or when the handshake fails; encrypt: TLS or no delivery (the mail is deferred)."),
        ConfigParameter("smtp_tls_policy_map", "", .path,
            "A file of 'destination level' lines (example.org encrypt, [mx.example.org]:587 may, .example.org for subdomains) that override smtp_tls_security_level per route; read when smtp-client starts."),
        ConfigParameter("smtp_tls_CAfile", "/etc/ssl/certs/ca-certificates.crt", .path,
            "The certificate authorities a server's certificate is checked against (read before the chroot); the result is logged as Trusted or Untrusted."),
        ConfigParameter("smtp_connect_timeout", "30s", .time,
            "How long smtp-client waits for a TCP connection."),
        ConfigParameter("smtp_helo_timeout", "300s", .time,
            "How long smtp-client waits for the greeting and for the replies to EHLO, HELO and STARTTLS, and for the TLS handshake."),
        ConfigParameter("smtp_mail_timeout", "300s", .time,
            "How long smtp-client waits for the reply to MAIL FROM."),
        ConfigParameter("smtp_rcpt_timeout", "300s", .time,
            "How long smtp-client waits for the reply to each RCPT TO."),
        ConfigParameter("smtp_data_init_timeout", "120s", .time,
            "How long smtp-client waits for the reply to DATA."),
        ConfigParameter("smtp_data_xfer_timeout", "180s", .time,
            "How long sending the message may take."),
        ConfigParameter("smtp_data_done_timeout", "600s", .time,
            "How long smtp-client waits for the reply after the final dot."),
        ConfigParameter("smtp_quit_timeout", "300s", .time,
            "How long smtp-client waits for the replies to RSET and QUIT."),
        ConfigParameter("smtp_connection_cache_time_limit", "2s", .time,
            "How long an idle connection is kept open for the next message to the same destination."),
        ConfigParameter("smtp_connection_reuse_time_limit", "300s", .time,
            "How long one connection is used for message after message."),
        ConfigParameter("smtp_mx_address_limit", "5", .integer,
            "The most server addresses tried for one delivery, over all MX hosts."),
    ]

    public static let byName: [String: ConfigParameter] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}
