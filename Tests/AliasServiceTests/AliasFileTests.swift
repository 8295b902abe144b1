import Testing
@testable import AliasService

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

@Suite("Recipient resolution")
struct AddressResolverTests {
    let resolver = AddressResolver(
        domains: LocalDomains(hostname: "Mail.Example.JP", fileText: "example.jp  # ours\nother.example.\n"),
        aliases: AliasFile(text: "team: jun\n"),
        userExists: { ["jun", "root"].contains($0) })

    @Test("local users and aliases, unknown names, remote domains", arguments: [
        ("jun@example.jp", "local", "jun"),
        ("JUN@MAIL.example.jp", "local", "jun"),
        ("team@other.example", "local", "team"),
        ("postmaster@localhost", "local", "postmaster"),
        ("root@[127.0.0.1]", "local", "root"),
        ("ghost@example.jp", "unknown_local", "ghost"),
        ("jun@example.org", "remote", ""),
    ])
    func resolve(address: String, routeClass: String, user: String) {
        let resolution = resolver.resolve(address)
        #expect(resolution.routeClass.rawValue == routeClass)
        #expect(resolution.localUser == user)
        if routeClass == "remote" { #expect(resolution.nexthop == "example.org") }
    }
}
