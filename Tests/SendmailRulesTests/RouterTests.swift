import Testing
@testable import SendmailRules

@Suite("Routing")
struct RouterTests {
    func route(_ address: String, smartHost: String = "", mailertable: [String: String] = [:]) -> MailerTriple {
        let entries = mailertable.mapValues { MapTable.Entry(value: $0, line: 1) }
        let tables = RoutingTables(localDomains: ["example.jp"],
                                   mailertable: MapTable(name: "mailertable", path: "/m", entries: entries),
                                   smartHost: smartHost)
        return Router(tables: tables).route(address).value
    }

    @Test("other domains go by MX (esmtp), or to the smart host when one is set")
    func smartHost() {
        #expect(route("a@example.org") == MailerTriple(mailer: "esmtp", host: "example.org", user: "a@example.org"))
        #expect(route("a@example.org", smartHost: "[relay.example.net]:587")
                == MailerTriple(mailer: "relay", host: "[relay.example.net]:587", user: "a@example.org"))
        // mailertable comes first, local mail stays local.
        #expect(route("a@example.org", smartHost: "[relay.example.net]", mailertable: ["example.org": "esmtp:[mx.example.org]"])
                == MailerTriple(mailer: "esmtp", host: "[mx.example.org]", user: "a@example.org"))
        #expect(route("jun@example.jp", smartHost: "[relay.example.net]").mailer == "local")
    }
}
