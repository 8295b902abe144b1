import Testing
@testable import SendmailRules

@Suite("Alias expansion")
struct AliasExpansionTests {
    let aliases: [String: [String]] = [
        "team": ["alice", "Bob", "alice@example.jp"],
        "crew": ["team", "carol", "\\crew"],
        "all": ["crew", "team", "outside@example.org", "/dev/null", "\"| /usr/bin/vacation jun\"", ":include:/lists/one"],
        "loop1": ["loop2"], "loop2": ["loop3"], "loop3": ["loop1"],
        "self": ["self", "alice"],
        "takagi": ["\\takagi", "jun"],
        "virt": ["info@example.jp"],
        "empty": [":include:/lists/empty"],
        "missing": [":include:/lists/none"],
    ]
    let users: Set<String> = ["alice", "bob", "carol", "crew", "jun", "takagi", "self", "fwd"]
    let files: [String: [String]] = ["/lists/one": ["carol", "dave@example.org"], "/lists/empty": []]

    func expansion() -> AliasExpansion {
        let tables = RoutingTables(localDomains: ["example.jp"],
                                   virtusertable: MapTable(name: "virtusertable", path: "/v",
                                                           entries: ["info@example.jp": .init(value: "jun", line: 1)]))
        let router = Router(tables: tables)
        return AliasExpansion(
            aliases: { self.aliases[$0] },
            include: { path, _ in self.files[path].map { .success($0) } ?? .failure(.init("Cannot open \(path): No such file or directory")) },
            forward: { $0 == "fwd" ? ["jun", "\\fwd"] : nil },
            userExists: { self.users.contains($0) },
            route: { router.route($0).value })
    }

    func displays(_ name: String) throws -> [String] {
        try expansion().expand(name, display: name).map(\.display)
    }

    @Test("nested aliases, duplicates removed, files, commands, include files and remote addresses")
    func nested() throws {
        let leaves = try expansion().expand("all", display: "all")
        #expect(leaves.map(\.display) == ["alice", "Bob", "carol", "\\crew", "outside@example.org", "/dev/null",
                                          "\"| /usr/bin/vacation jun\"", "dave@example.org"])
        #expect(leaves[5] == .file(path: "/dev/null", source: .aliases))
        #expect(leaves[6] == .pipe(command: "| /usr/bin/vacation jun", source: .aliases))
        #expect(leaves[7].triple == MailerTriple(mailer: "esmtp", host: "example.org", user: "dave@example.org"))
    }

    @Test("sendmail's -bv triples", arguments: [
        ("takagi", ["\\takagi: mailer local, user \\takagi", "jun: mailer local, user jun"]),
        ("virt", ["info@example.jp: mailer local, user jun"]),
        ("fwd", ["jun: mailer local, user jun", "\\fwd: mailer local, user \\fwd"]),
        ("self", ["self: mailer local, user self", "alice: mailer local, user alice"]),
    ])
    func triples(name: String, expected: [String]) throws {
        let leaves = try expansion().expand(name, display: name)
        #expect(leaves.map { "\($0.display): \($0.triple!)" } == expected)
    }

    @Test("a name that is neither alias nor user is unknown; \\name skips the aliases")
    func unknown() throws {
        #expect(try expansion().expand("ghost", display: "ghost") == [.error(display: "ghost", text: "User unknown", status: "5.1.1")])
        #expect(try expansion().expand("\\team", display: "\\team") == [.error(display: "\\team", text: "User unknown", status: "5.1.1")])
    }

    @Test("loops and empty lists end the expansion; a missing include file is an error leaf")
    func failures() throws {
        #expect(throws: AliasExpansion.Failure.loop("loop1 -> loop2 -> loop3 -> loop1")) { try expansion().expand("loop1", display: "loop1") }
        #expect(throws: AliasExpansion.Failure.self) { try expansion().expand("empty", display: "empty") }
        #expect(try displays("missing") == [":include:/lists/none"])
    }

    @Test("include and .forward files: commas, newlines and comments")
    func listFiles() {
        #expect(AliasExpansion.targets(inListFile: "# team\ntakagi\niida, jun\n\n# end\nremote@example.com\n")
                == ["takagi", "iida", "jun", "remote@example.com"])
    }
}
