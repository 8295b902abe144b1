import Testing
@testable import SendmailMC

@Suite("sendmail.mc read as m4")
struct M4ReaderTests {
    func calls(_ text: String, includes: M4Reader.IncludeReader? = nil) throws -> [MCMacroCall] {
        let statements = try includes.map { try M4Reader.read(text, file: "t.mc", includes: $0) }
            ?? M4Reader.read(text, file: "t.mc")
        return statements.compactMap {
            if case .macro(let call) = $0 { return call }
            return nil
        }
    }

    @Test("quoted arguments lose one level of quotes; nested quotes keep theirs")
    func quotes() throws {
        let got = try calls("define(`confX', ``nested' value')dnl\nFEATURE(access_db)\n")
        #expect(got.map(\.name) == ["define", "FEATURE"])
        #expect(got[0].arguments == ["confX", "`nested' value"])
        #expect(got[1].arguments == ["access_db"])
        #expect(got[0].source == MCSource(file: "t.mc", line: 1))
        #expect(got[1].source == MCSource(file: "t.mc", line: 2))
    }

    @Test("dnl removes the rest of the line, `dnl #` comments too, but not inside quotes")
    func dnl() throws {
        let text = """
        dnl # a comment with FEATURE(`nocanonify') in it
        dnl FEATURE(`smrsh')dnl
        FEATURE(`greet_pause', `1000')dnl 1 seconds FEATURE(`redirect')
        define(`confSMTP_LOGIN_MSG', `dnl is text here')
        """
        let got = try calls(text)
        #expect(got.map(\.name) == ["FEATURE", "define"])
        #expect(got[0].arguments == ["greet_pause", "1000"])
        #expect(got[0].source.line == 3)
        #expect(got[1].arguments == ["confSMTP_LOGIN_MSG", "dnl is text here"])
    }

    @Test("a call's arguments span lines; leading white space and dnl between them are dropped")
    func multiLine() throws {
        let text = """
        divert(0)dnl
        define(`confPRIVACY_FLAGS',dnl
        `needmailhelo,needexpnhelo,
        authwarnings')dnl
        FEATURE(`access_db',
                `hash -T<TMPF> -o /etc/mail/access',
                `skip')
        """
        let got = try calls(text)
        #expect(got.map(\.name) == ["divert", "define", "FEATURE"])
        #expect(got[1].arguments == ["confPRIVACY_FLAGS", "needmailhelo,needexpnhelo,\nauthwarnings"])
        #expect(got[1].source.line == 2)
        #expect(got[1].text == "define(`confPRIVACY_FLAGS', `needmailhelo,needexpnhelo, authwarnings')")
        #expect(got[2].arguments == ["access_db", "hash -T<TMPF> -o /etc/mail/access", "skip"])
        #expect(got[2].source.line == 5)
    }

    @Test("an empty argument and parentheses inside an argument")
    func emptyAndNested() throws {
        let got = try calls("FEATURE(`access_db', , `skip')\ndefine(`X', (a, b))\n")
        #expect(got[0].arguments == ["access_db", "", "skip"])
        #expect(got[1].arguments == ["X", "(a, b)"])
    }

    @Test("the file's own definitions are expanded where they are used, with $1")
    func expansion() throws {
        let text = """
        define(`MYDIR', `/srv/mail')dnl
        define(`ACCESS', `FEATURE(`access_db', `hash $1/access')')dnl
        FEATURE(`mailertable', `hash -o 'MYDIR`/mailertable')dnl
        ACCESS(`/srv')
        """
        let got = try calls(text)
        #expect(got.map(\.name) == ["define", "define", "FEATURE", "FEATURE"])
        #expect(got[2].arguments == ["mailertable", "hash -o /srv/mail/mailertable"])
        #expect(got[3].arguments == ["access_db", "hash /srv/access"])
        #expect(got[3].source.line == 4)
    }

    @Test("ifdef and ifelse are decided by the file's own definitions")
    func conditions() throws {
        let text = """
        define(`WANT_SMRSH')dnl
        ifdef(`WANT_SMRSH', `FEATURE(`smrsh')', `FEATURE(`local_procmail')')dnl
        ifdef(`ORACLE_NO_DELAY_CHECKS', `dnl', `FEATURE(`delay_checks', `friend', `n')dnl')
        ifelse(`a', `b', `FEATURE(`one')', `a', `a', `FEATURE(`two')', `FEATURE(`three')')
        """
        let statements = try M4Reader.read(text, file: "t.mc")
        let features = statements.compactMap { statement -> String? in
            if case .macro(let call) = statement, call.name == "FEATURE" { return call.argument(0) }
            return nil
        }
        #expect(features == ["smrsh", "delay_checks", "two"])
        let conditions = statements.filter { if case .condition = $0 { return true } else { return false } }
        #expect(conditions.count == 3)
    }

    @Test("an ifelse on eval is not decided but reported")
    func undecided() throws {
        let statements = try M4Reader.read("ifelse(eval(1 > 0), `1', `FEATURE(`smrsh')')\n", file: "t.mc")
        guard case .undecided(let call, _) = statements.first else {
            Issue.record("expected undecided, got \(statements)")
            return
        }
        #expect(call.name == "ifelse")
        #expect(statements.count == 1)
    }

    @Test("an unknown macro is a call; text after LOCAL_CONFIG is raw sendmail.cf")
    func unknownAndRaw() throws {
        let text = """
        MY_OWN_MACRO(`x', `y')dnl
        LOCAL_CONFIG
        Kfoo hash /etc/mail/foo
        # a sendmail.cf comment
        Cwextra.example.jp
        MAILER(`local')dnl
        """
        let statements = try M4Reader.read(text, file: "t.mc")
        #expect(statements == [
            .macro(MCMacroCall(name: "MY_OWN_MACRO", arguments: ["x", "y"], text: "MY_OWN_MACRO(`x', `y')",
                               source: MCSource(file: "t.mc", line: 1))),
            .macro(MCMacroCall(name: "LOCAL_CONFIG", arguments: [], text: "LOCAL_CONFIG", source: MCSource(file: "t.mc", line: 2))),
            .rawText("Kfoo hash /etc/mail/foo", MCSource(file: "t.mc", line: 3), section: "LOCAL_CONFIG"),
            .rawText("Cwextra.example.jp", MCSource(file: "t.mc", line: 5), section: "LOCAL_CONFIG"),
            .macro(MCMacroCall(name: "MAILER", arguments: ["local"], text: "MAILER(`local')", source: MCSource(file: "t.mc", line: 6))),
        ])
    }

    @Test("text under divert(-1) is discarded, as m4 discards it")
    func divertDiscards() throws {
        let statements = try M4Reader.read("divert(-1)\nsome words here\ndivert(0)dnl\nmore words\n", file: "t.mc")
        let raw = statements.compactMap { statement -> String? in
            if case .rawText(let text, _, _) = statement { return text }
            return nil
        }
        #expect(raw == ["more words"])
    }

    @Test("includes are read through the closure, cf.m4 is not")
    func includes() throws {
        let text = """
        include(`/usr/share/sendmail/cf/m4/cf.m4')dnl
        include(`/etc/mail/m4/provider.m4')dnl
        include(`local.m4')dnl
        sinclude(`/etc/mail/none.m4')dnl
        """
        var asked: [String] = []
        let statements = try M4Reader.read(text, file: "/etc/mail/sendmail.mc") { path in
            asked.append(path)
            if path == "/etc/mail/m4/provider.m4" { return .success("define(`SMART_HOST', `[relay.example.net]')dnl\n") }
            return .failure(MCIncludeFailure("No such file or directory"))
        }
        #expect(asked == ["/etc/mail/m4/provider.m4", "/etc/mail/local.m4", "/etc/mail/none.m4"])
        var statuses: [String: MCStatement.IncludeStatus] = [:]
        for case .include(_, let path, let status) in statements { statuses[path] = status }
        #expect(statuses["/usr/share/sendmail/cf/m4/cf.m4"] == .machinery)
        #expect(statuses["/etc/mail/m4/provider.m4"] == .read(statements: 1))
        #expect(statuses["/etc/mail/local.m4"] == .unreadable("No such file or directory"))
        #expect(statuses["/etc/mail/none.m4"] == .silentlyMissing)
        #expect(statements.contains(.macro(MCMacroCall(name: "define", arguments: ["SMART_HOST", "[relay.example.net]"],
                                                       text: "define(`SMART_HOST', `[relay.example.net]')",
                                                       source: MCSource(file: "/etc/mail/m4/provider.m4", line: 1)))))
    }

    @Test("errors name the file and the line", arguments: [
        ("dnl ok\nMASQUERADE_AS(`example.jp)dnl\nFEATURE(`x')\n", 2, "a quote opened with ` is not closed with ' before the end of the file"),
        ("dnl ok\n\nFEATURE(`access_db',\n`skip'\n", 3, "FEATURE( has no closing parenthesis before the end of the file"),
        ("changequote([,])dnl\n", 1, "changequote is not supported: the file's quotes or comments would no longer be m4's usual ones"),
    ])
    func errors(text: String, line: Int, message: String) {
        #expect(throws: MCParseError(MCSource(file: "t.mc", line: line), message)) {
            try M4Reader.read(text, file: "t.mc")
        }
    }

    @Test("a definition that expands into itself stops")
    func recursion() {
        #expect(throws: MCParseError.self) {
            try M4Reader.read("define(`LOOP', `LOOP')dnl\nLOOP\n", file: "t.mc")
        }
    }
}
