import Testing
@testable import SendmailRules

@Suite("TCP wrappers: hosts.allow and hosts.deny")
struct HostsAccessTests {
    static let daemons = ["smtpd", "sendmail"]

    static func decide(allow: String?, deny: String?, _ client: HostsAccess.Client) -> HostsAccess.Decision {
        HostsAccess(allowPath: "/etc/hosts.allow", allowText: allow, denyPath: "/etc/hosts.deny", denyText: deny)
            .decide(daemons: daemons, client: client)
    }

    static let stranger = HostsAccess.Client(address: "203.0.113.9", name: "mail.example.net")

    @Test("the tutorial's hosts.allow under a deny-everything hosts.deny lets everyone send mail")
    func tutorial() {
        let allow = """
        # hosts.allow This file describes the names of the hosts which are
        # allowed to use the local INET services, as decided
        # by the '/usr/sbin/tcpd' server.
        sendmail:ALL
        """
        let decision = Self.decide(allow: allow, deny: "ALL: ALL\n", Self.stranger)
        #expect(decision == .init(allowed: true, rule: "/etc/hosts.allow:4"))
        // Without the allow line, the same client is refused.
        #expect(Self.decide(allow: nil, deny: "ALL: ALL\n", Self.stranger) == .init(allowed: false, rule: "/etc/hosts.deny:1"))
        // No files, no rules: allowed.
        #expect(Self.decide(allow: nil, deny: nil, Self.stranger).allowed)
    }

    @Test("client patterns", arguments: [
        ("ALL", true), ("203.0.113.9", true), ("203.0.113.", true), ("203.0.", true), ("203.0.114.", false),
        ("203.0.113.0/255.255.255.0", true), ("203.0.113.0/24", true), ("203.0.112.0/255.255.255.0", false),
        (".example.net", true), (".example.org", false), ("mail.example.net", true), ("MAIL.Example.NET", true),
        ("KNOWN", true), ("UNKNOWN", false), ("LOCAL", false), ("PARANOID", false),
        ("*.example.net", true), ("203.0.113.?", true), ("mail?.example.net", false),
        ("ALL EXCEPT 203.0.113.9", false), ("ALL EXCEPT .example.org", true), ("ALL@ALL", true),
        ("root@ALL", false), ("@trusted-hosts", false), ("[2001:db8::1]", false),
        ("203.0.113.9, 198.51.100.1", true), ("198.51.100.1 203.0.113.9", true),
    ])
    func clientPatterns(pattern: String, matches: Bool) {
        let decision = Self.decide(allow: nil, deny: "smtpd: \(pattern)\n", Self.stranger)
        #expect(decision.allowed == !matches, "\(pattern)")
    }

    @Test("IPv6 clients match bracketed patterns with prefix lengths")
    func ipv6() {
        let client = HostsAccess.Client(address: "2001:db8::25", name: nil)
        #expect(!Self.decide(allow: nil, deny: "sendmail: [2001:db8::]/32\n", client).allowed)
        #expect(!Self.decide(allow: nil, deny: "sendmail: [2001:db8::25]\n", client).allowed)
        #expect(Self.decide(allow: nil, deny: "sendmail: [2001:db9::]/32\n", client).allowed)
        #expect(!Self.decide(allow: nil, deny: "sendmail: UNKNOWN\n", client).allowed)
    }

    @Test("names that do not resolve back are PARANOID and not KNOWN")
    func paranoid() {
        let forged = HostsAccess.Client(address: "198.51.100.7", name: "bank.example.com", paranoid: true)
        #expect(!Self.decide(allow: nil, deny: "ALL: PARANOID\n", forged).allowed)
        #expect(Self.decide(allow: nil, deny: "ALL: .example.com\n", forged).allowed)
        #expect(!Self.decide(allow: nil, deny: "ALL: UNKNOWN\n", forged).allowed)
    }

    @Test("daemon lists: other daemons' rules do not apply; ALL EXCEPT and daemon@host")
    func daemonLists() {
        #expect(Self.decide(allow: nil, deny: "sshd, in.ftpd: ALL\n", Self.stranger).allowed)
        #expect(!Self.decide(allow: nil, deny: "sshd, smtpd: ALL\n", Self.stranger).allowed)
        #expect(Self.decide(allow: nil, deny: "ALL EXCEPT sendmail: ALL\n", Self.stranger).allowed)
        #expect(!Self.decide(allow: nil, deny: "ALL EXCEPT sshd: ALL\n", Self.stranger).allowed)
        let access = HostsAccess(allowPath: "a", allowText: nil, denyPath: "d", denyText: "sendmail@192.0.2.1: ALL\n")
        #expect(!access.decide(daemons: Self.daemons, client: Self.stranger, serverAddress: "192.0.2.1").allowed)
        #expect(access.decide(daemons: Self.daemons, client: Self.stranger, serverAddress: "192.0.2.2").allowed)
    }

    @Test("options allow and deny turn a rule around; twist refuses; spawn is reported")
    func options() {
        #expect(!Self.decide(allow: "sendmail: ALL: deny\n", deny: nil, Self.stranger).allowed)
        #expect(Self.decide(allow: nil, deny: "sendmail: 203.0.113.9: allow\nALL: ALL\n", Self.stranger).allowed)
        let access = HostsAccess(allowPath: "/etc/hosts.allow", allowText: "sendmail: ALL: spawn (echo %a) &\nsmtpd: 203.0.113.9: twist /bin/false\n",
                                 denyPath: "/etc/hosts.deny", denyText: nil)
        #expect(access.decide(daemons: Self.daemons, client: Self.stranger).allowed)
        #expect(access.problems.contains { $0.hasPrefix("/etc/hosts.allow:1:") && $0.contains("spawn") })
    }

    @Test("continuation lines, comments, bad lines with file and line, pattern files")
    func fileSyntax() {
        let deny = """
        # comment
        sendmail: 192.0.2.1, \\
            203.0.113.9

        this line has no separator
        smtpd: /etc/mail/bad-clients
        """
        let access = HostsAccess(allowPath: "/etc/hosts.allow", allowText: nil, denyPath: "/etc/hosts.deny", denyText: deny,
                                 readFile: { $0 == "/etc/mail/bad-clients" ? "# list\n198.51.100.0/24\n" : nil })
        #expect(access.decide(daemons: Self.daemons, client: Self.stranger) == .init(allowed: false, rule: "/etc/hosts.deny:2"))
        #expect(access.problems == ["/etc/hosts.deny:5: missing \":\" separator; line ignored"])
        let listed = HostsAccess.Client(address: "198.51.100.20", name: nil)
        #expect(access.decide(daemons: Self.daemons, client: listed) == .init(allowed: false, rule: "/etc/hosts.deny:6"))
    }
}
