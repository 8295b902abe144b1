import Testing
@testable import AliasService
import HikyakuIPC
import MailCore
import SendmailRules

@Suite("aliases(5) files")
struct AliasFileTests {
    @Test("continuations, quotes, comments and case")
    func parse() {
        let file = AliasFile(text: """
        # Debian's defaults
        MAILER-DAEMON: postmaster
        postmaster: root
        staff: jun,
          takagi,
        \tiida
        vacation: "|/usr/bin/vacation jun", jun
        "quoted name": root

        """)
        #expect(file.problems.isEmpty)
        #expect(file.lookup("mailer-daemon") == ["postmaster"])
        #expect(file.lookup("STAFF") == ["jun", "takagi", "iida"])
        #expect(file.lookup("vacation") == ["|/usr/bin/vacation jun", "jun"])
        #expect(file.lookup("quoted name") == ["root"])
        #expect(file.lookup("nobody") == nil)
    }

    @Test("bad lines are reported with their numbers and the rest still counts")
    func problems() {
        let file = AliasFile(text: "  orphan\nno colon here\nok: root\nempty:\nbad: \"unterminated\ntwice: a\nTwice: b\n")
        #expect(file.problems.map(\.description) == [
            "line 1: continuation line without an alias before it",
            "line 2: missing colon after the alias name",
            "line 4: alias 'empty' has no targets",
            "line 5: unbalanced quote",
            "line 7: alias 'Twice' defined twice; the later entry is used",
        ])
        #expect(file.lookup("ok") == ["root"])
        #expect(file.lookup("twice") == ["b"])
    }
}

@Suite("aliases.db values")
struct AliasDatabaseValueTests {
    @Test("what newaliases stores reads back as the same targets, an escaped quote included")
    func roundTrip() {
        let file = AliasFile(text: """
        esc: "a\\"b", jun
        prog: "|/usr/bin/vacation -a \\"x y\\" jun",
        \t/var/mail/archive, "odd, name"
        staff: jun,
          takagi

        """)
        #expect(file.problems.isEmpty)
        #expect(file.lookup("esc") == ["a\\\"b", "jun"])
        let database = AliasFile(databaseEntries: file.values.map { (key: $0.key, value: $0.value) })
        #expect(database.problems.isEmpty)
        #expect(database.entries == file.entries)
        #expect(file.values["esc"] == "\"a\\\"b\", jun")
    }

    @Test("a value as sendmail's newaliases stores it: the right-hand side, continuation lines joined as read")
    func sendmailValue() {
        let database = AliasFile(databaseEntries: [(key: "staff", value: "jun,\ttakagi,  iida"),
                                                   (key: "esc", value: "\"a\\\"b\""), (key: "@", value: "@")])
        #expect(database.lookup("staff") == ["jun", "takagi", "iida"])
        #expect(database.lookup("esc") == ["a\\\"b"])
    }

    @Test("an entry that does not parse is reported by name, and the others still count")
    func unparseable() {
        let database = AliasFile(databaseEntries: [(key: "broken", value: "\"a\\\\\"b\""), (key: "empty", value: " , "),
                                                   (key: "ok", value: "root")])
        #expect(database.lookup("ok") == ["root"])
        #expect(database.lookup("broken") == nil)
        #expect(database.problems.map(\.description) == [
            "alias 'broken': its value in the database does not parse (unbalanced quote); alias ignored",
            "alias 'empty' has no targets in the database; alias ignored",
        ])
    }
}

@Suite("Recipient decisions")
struct RecipientDecisionsTests {
    let decisions = RecipientDecisions(
        tables: RoutingTables(localDomains: ["example.jp", "mail.example.jp", "localhost"]),
        aliases: AliasFile(text: "team: jun\n"),
        userExists: { ["jun", "root"].contains($0) })

    @Test("local users and aliases, unknown names, remote domains", arguments: [
        ("jun@example.jp", "local", "jun"),
        ("JUN@MAIL.example.jp", "local", "jun"),
        ("team@example.jp", "local", "team"),
        ("jun+box@example.jp", "local", "jun+box"),
        ("postmaster@localhost", "local", "postmaster"),
        ("ghost@example.jp", "unknown_local", "ghost"),
        ("jun@example.org", "remote", ""),
    ])
    func resolve(address: String, routeClass: String, user: String) {
        let (resolution, _) = decisions.resolve(address)
        #expect(resolution.routeClass.rawValue == routeClass)
        #expect(resolution.localUser == user)
        if routeClass == "remote" { #expect(resolution.nexthop == "example.org" && resolution.mailer == "esmtp") }
    }

    @Test("RCPT decisions: relaying only for this host, unknown users refused")
    func check() {
        func verdict(_ address: String, _ recipient: String) -> AliasProtocol.RecipientVerdict {
            decisions.check(AliasProtocol.RecipientCheck(clientAddress: address, clientName: "[\(address)]",
                                                         clientResolve: "FAIL", sender: "a@example.org",
                                                         recipient: recipient)).0
        }
        #expect(verdict("127.0.0.1", "x@example.org") == .accept)
        #expect(verdict("192.0.2.1", "x@example.org") == .reject(SMTPReply(550, EnhancedStatusCode(5, 7, 1),
            "<x@example.org>... Relaying denied. IP name lookup failed [192.0.2.1]")))
        #expect(verdict("192.0.2.1", "ghost@example.jp") == .reject(SMTPReply(550, EnhancedStatusCode(5, 1, 1),
            "<ghost@example.jp>... User unknown")))
        #expect(verdict("192.0.2.1", "team@example.jp") == .accept)
    }

    @Test("sendmail -bs for a user other than root: this host as the client, but only the recipient's domain allows relaying")
    func clientMayNotRelay() {
        var local = decisions
        local.tables.virtualDomains = ["virt.example"]
        local.tables.relayDomains = ["partner.example"]
        func verdict(_ recipient: String, mayRelay: Bool) -> AliasProtocol.RecipientVerdict {
            var d = local
            d.clientMayRelay = mayRelay
            return d.check(AliasProtocol.RecipientCheck(clientAddress: "", clientName: "localhost", clientResolve: "OK",
                                                        sender: "jun@example.jp", recipient: recipient)).0
        }
        let denied = { (address: String) in
            AliasProtocol.RecipientVerdict.reject(SMTPReply(550, EnhancedStatusCode(5, 7, 1), "<\(address)>... Relaying denied"))
        }
        #expect(verdict("x@example.org", mayRelay: true) == .accept)
        #expect(verdict("x@example.org", mayRelay: false) == denied("x@example.org"))
        #expect(verdict("x%example.org@example.jp", mayRelay: false) == denied("x%example.org@example.jp"))
        #expect(verdict("team@example.jp", mayRelay: false) == .accept)
        #expect(verdict("anyone@virt.example", mayRelay: false) == .accept)
        #expect(verdict("a@mx.partner.example", mayRelay: false) == .accept)
        #expect(verdict("ghost@example.jp", mayRelay: false) == .reject(SMTPReply(550, EnhancedStatusCode(5, 1, 1),
            "<ghost@example.jp>... User unknown")))
    }
}
