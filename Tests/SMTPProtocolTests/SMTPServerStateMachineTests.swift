import MailCore
import Testing
@testable import SMTPProtocol

@Suite("The SMTP server state machine")
struct SMTPServerStateMachineTests {
    typealias Machine = SMTPServerStateMachine

    static func replies(_ action: Machine.Action) -> [String] {
        switch action {
        case .send(let replies, _), .abortMessage(let replies, _):
            return replies.map { $0.description }
        default:
            return []
        }
    }

    /// Feeds lines; verification and queue steps are answered as given.
    static func run(_ lines: [String], settings: Machine.Settings = .init(hostname: "mx.example.jp"),
                    verdict: (MailAddress) -> Machine.RecipientVerdict = { _ in .accept }) -> [String] {
        var machine = Machine(settings: settings)
        var out = replies(machine.greeting())
        for line in lines {
            var action = machine.isReceivingData
                ? machine.dataEnded(.complete(size: Int(line) ?? 0))
                : machine.receive(line: Array(line.utf8))
            while true {
                switch action {
                case .verifyRecipient(let address):
                    action = machine.recipientVerified(verdict(address))
                    continue
                case .openMessage:
                    action = machine.dataStarted()
                    continue
                case .commitMessage:
                    action = machine.commitFinished(.queued(QueueID(seconds: 1, microseconds: 0, inode: 1)))
                    continue
                default:
                    break
                }
                break
            }
            out += replies(action)
            if machine.isClosed { out.append("(closed)") }
        }
        return out
    }

    @Test("a complete transaction")
    func happyPath() {
        let out = Self.run(["EHLO client", "MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME", "RCPT TO:<b@example.jp>",
                            "DATA", "100", "QUIT"])
        #expect(out == [
            "220 mx.example.jp ESMTP hikyaku",
            "250 mx.example.jp PIPELINING SIZE 10240000 ENHANCEDSTATUSCODES 8BITMIME DSN SMTPUTF8 CHUNKING",
            "250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as 0000010000z1", "221 2.0.0 Bye", "(closed)",
        ])
    }

    @Test("each bad command has its exact reply", arguments: [
        (["RCPT TO:<b@example.jp>"], "503 5.5.1 Error: need MAIL command"),
        (["MAIL FROM:<a@x.org>", "MAIL FROM:<a@x.org>"], "503 5.5.1 Error: nested MAIL command"),
        (["MAIL FROM:<a@x.org>", "DATA"], "554 5.5.1 Error: no valid recipients"),
        (["DATA"], "503 5.5.1 Error: need RCPT command"),
        (["XYZZY"], "502 5.5.2 Error: command not recognized"),
        ([""], "500 5.5.2 Error: bad syntax"),
        (["MAIL FROM:<a@x.org> SIZE=10240001"], "552 5.3.4 Message size exceeds fixed limit"),
        (["MAIL FROM:<a@x.org> SIZE=12x"], "501 5.5.4 Bad message size syntax"),
        (["MAIL FROM:<a@x.org> AUTH=<>"], "555 5.5.4 Unsupported option: AUTH"),
        (["MAIL FROM:<a@x.org>", "RCPT TO:<b@x.org> XNOTIFY=NEVER"], "555 5.5.4 Unsupported option: XNOTIFY"),
        (["MAIL FROM:a@x.org>"], "501 5.1.7 Bad sender address syntax"),
        (["MAIL TO:<a@x.org>"], "501 5.5.4 Syntax: MAIL FROM:<address>"),
        (["MAIL FROM:<a@x.org>", "RCPT TO:<>"], "501 5.1.3 Bad recipient address syntax"),
        (["VRFY"], "501 5.5.4 Syntax: VRFY address"),
        (["VRFY root"], "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery"),
        (["RSET"], "250 2.0.0 Ok"),
        (["NOOP whatever"], "250 2.0.0 Ok"),
    ])
    func badInput(lines: [String], expected: String) {
        #expect(Self.run(["EHLO client"] + lines).last == expected)
    }

    @Test("MAIL before HELO, and ESMTP parameters after HELO")
    func heloRules() {
        #expect(Self.run(["MAIL FROM:<a@x.org>"]).last == "503 5.5.1 Error: send HELO/EHLO first")
        #expect(Self.run(["HELO client", "MAIL FROM:<a@x.org> SIZE=10"]).last == "555 5.5.4 Unsupported option: SIZE")
        #expect(Self.run(["HELO client"]).last == "250 mx.example.jp")
    }

    @Test("refused recipients do not count; too many recipients are refused")
    func recipients() {
        let settings = Machine.Settings(hostname: "mx.example.jp", recipientLimit: 2)
        let out = Self.run(["EHLO c", "MAIL FROM:<a@x.org>", "RCPT TO:<bad@x.org>", "RCPT TO:<b@x.org>",
                            "RCPT TO:<c@x.org>", "RCPT TO:<d@x.org>"], settings: settings) { address in
            address.localPart == "bad"
                ? .reject(SMTPReply(550, EnhancedStatusCode(5, 1, 1), "<bad@x.org>... User unknown"))
                : .accept
        }
        #expect(Array(out.suffix(4)) == ["550 5.1.1 <bad@x.org>... User unknown", "250 2.1.5 Ok", "250 2.1.5 Ok",
                                         "452 4.5.3 Error: too many recipients"])
    }

    @Test("the error limit ends the session with 421")
    func errorLimit() {
        let settings = Machine.Settings(hostname: "mx.example.jp", hardErrorLimit: 3)
        let out = Self.run(["EHLO c", "X1", "X2", "X3", "NOOP"], settings: settings)
        #expect(Array(out.suffix(5)) == ["502 5.5.2 Error: command not recognized",
                                         "502 5.5.2 Error: command not recognized",
                                         "421 4.7.0 mx.example.jp Error: too many errors", "(closed)", "(closed)"])
    }

    @Test("a body over the limit is refused after the data, and the session goes on")
    func bodyTooBig() {
        let settings = Machine.Settings(hostname: "mx.example.jp", messageSizeLimit: 1000)
        let out = Self.run(["EHLO c", "MAIL FROM:<a@x.org>", "RCPT TO:<b@x.org>", "DATA", "1001", "NOOP"], settings: settings)
        #expect(Array(out.suffix(2)) == ["552 5.3.4 Error: message file too big", "250 2.0.0 Ok"])
    }

    @Test("bare line endings fail the message and close the session")
    func bareLineEnding() {
        var machine = Machine(settings: .init(hostname: "mx.example.jp"))
        _ = machine.greeting()
        _ = machine.receive(line: Array("EHLO c".utf8))
        _ = machine.receive(line: Array("MAIL FROM:<a@x.org>".utf8))
        _ = machine.recipientVerified({ _ = machine.receive(line: Array("RCPT TO:<b@x.org>".utf8)); return .accept }())
        if case .openMessage = machine.receive(line: Array("DATA".utf8)) {} else { Issue.record("no openMessage") }
        _ = machine.dataStarted()
        let action = machine.dataEnded(.bareLineEnding(bareLF: true))
        #expect(action == .abortMessage([SMTPReply(550, EnhancedStatusCode(5, 5, 2),
                                                   "Error: bare <LF> received; lines must end with <CR><LF>")], close: true))
        #expect(machine.isClosed)
    }

    @Test("timeouts and long lines")
    func timeoutsAndLongLines() {
        var machine = Machine(settings: .init(hostname: "mx.example.jp"))
        #expect(Self.replies(machine.lineTooLong()) == ["500 5.5.2 Error: line too long"])
        #expect(Self.replies(machine.timedOut()) == ["421 4.4.2 mx.example.jp Error: timeout exceeded"])
        #expect(machine.isClosed)
    }
}

@Suite("Command parsing")
struct SMTPCommandTests {
    @Test("verbs are case-insensitive and spaces around the colon are tolerated", arguments: [
        "mail from:<a@x.org>", "MAIL FROM: <a@x.org>", "Mail From:a@x.org", "MAIL FROM:<a@x.org>   ",
    ])
    func lenient(line: String) throws {
        #expect(try SMTPCommand.parse(Array(line.utf8)) == .mail(MailAddress(localPart: "a", domain: "x.org"), []))
    }

    @Test("parameters are upper-cased keywords with optional values")
    func parameters() throws {
        let command = try SMTPCommand.parse(Array("MAIL FROM:<\"a>b\"@x.org> size=12 BODY=8bitmime".utf8))
        #expect(command == .mail(MailAddress(localPart: "\"a>b\"", domain: "x.org"),
                                 [ESMTPParameter(keyword: "SIZE", value: "12"), ESMTPParameter(keyword: "BODY", value: "8bitmime")]))
    }

    @Test("NUL bytes and arguments where none belong are syntax errors")
    func strict() {
        #expect(throws: SMTPCommandError.syntax(verb: "")) { try SMTPCommand.parse([0x4E, 0x4F, 0, 0x50]) }
        #expect(throws: SMTPCommandError.syntax(verb: "DATA")) { try SMTPCommand.parse(Array("DATA now".utf8)) }
        #expect(throws: SMTPCommandError.syntax(verb: "QUIT")) { try SMTPCommand.parse(Array("QUIT x".utf8)) }
    }
}

@Suite("Received header")
struct ReceivedHeaderTests {
    @Test("one recipient is named; several are not; client text is sanitized")
    func layout() {
        let id = QueueID(seconds: 1, microseconds: 0, inode: 1)
        let one = ReceivedHeader.text(heloName: "client (evil)\r\nX: y", clientName: "localhost", clientAddress: "127.0.0.1",
                                      hostname: "mx.example.jp", protocolName: "ESMTP", queueID: id,
                                      recipients: ["b@example.jp"], date: "D")
        #expect(one == "Received: from client__evil___X:_y (localhost [127.0.0.1])\n\tby mx.example.jp (hikyaku) with ESMTP id \(id)\n\tfor <b@example.jp>; D\n")
        let two = ReceivedHeader.text(heloName: "c", clientName: "unknown", clientAddress: "::1",
                                      hostname: "mx", protocolName: "SMTP", queueID: id, recipients: ["a@x", "b@x"], date: "D")
        #expect(two == "Received: from c (unknown [IPv6:::1])\n\tby mx (hikyaku) with SMTP id \(id);\n\tD\n")
    }

    @Test("SMTPUTF8: Unicode addresses only after MAIL ... SMTPUTF8; bad UTF-8 is refused")
    func smtpUTF8() {
        let without = SMTPServerStateMachineTests.run(["EHLO c", "MAIL FROM:<jö@example.org>", "MAIL FROM:<a@example.org>", "RCPT TO:<ü@bücher.example>"])
        #expect(without[2] == "553 5.6.7 Must declare SMTPUTF8 to send Unicode addresses")
        #expect(without[4] == "553 5.6.7 Must declare SMTPUTF8 to send Unicode addresses")
        let with = SMTPServerStateMachineTests.run(["EHLO c", "MAIL FROM:<jö@example.org> SMTPUTF8", "RCPT TO:<ü@bücher.example>"])
        #expect(Array(with.suffix(2)) == ["250 2.1.0 Ok", "250 2.1.5 Ok"])
        #expect(SMTPServerStateMachineTests.run(["EHLO c", "MAIL FROM:<a@b> SMTPUTF8=yes"]).last == "501 5.5.4 Bad SMTPUTF8 parameter syntax")
        var machine = SMTPServerStateMachine(settings: .init(hostname: "mx"))
        _ = machine.greeting()
        _ = machine.receive(line: Array("EHLO c".utf8))
        #expect(SMTPServerStateMachineTests.replies(machine.receive(line: Array("MAIL FROM:<j".utf8) + [0xC3, 0x28] + Array("@x> SMTPUTF8".utf8)))
                == ["500 5.5.2 Error: bad UTF-8 syntax"])
    }
}

@Suite("STARTTLS in the server state machine")
struct SMTPServerStartTLSTests {
    static func send(_ machine: inout SMTPServerStateMachine, _ line: String) -> SMTPServerStateMachine.Action {
        machine.receive(line: Array(line.utf8))
    }

    @Test("offered until TLS is up, then refused with 503; everything from before is forgotten")
    func startTLS() {
        var settings = SMTPServerStateMachine.Settings(hostname: "mx")
        settings.tlsAvailable = true
        var machine = SMTPServerStateMachine(settings: settings)
        _ = machine.greeting()
        guard case .send(let ehlo, _) = Self.send(&machine, "EHLO c") else { Issue.record("no EHLO reply"); return }
        #expect(ehlo[0].lines.contains("STARTTLS"))
        #expect(Self.send(&machine, "STARTTLS now") == .send([SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Syntax: STARTTLS")], close: false))
        #expect(Self.send(&machine, "STARTTLS") == .startTLS(SMTPReply(220, EnhancedStatusCode(2, 0, 0), "Ready to start TLS")))
        machine.tlsStarted()
        #expect(machine.tlsActive)
        // RFC 3207: the client must greet again.
        #expect(Self.send(&machine, "MAIL FROM:<a@b>") == .send([SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: send HELO/EHLO first")], close: false))
        guard case .send(let again, _) = Self.send(&machine, "EHLO c") else { Issue.record("no EHLO reply"); return }
        #expect(!again[0].lines.contains("STARTTLS"))
        #expect(Self.send(&machine, "STARTTLS") == .send([SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: TLS already active")], close: false))
    }

    @Test("not offered without a certificate; required before MAIL when the level or the port says so")
    func requiredAndUnavailable() {
        var plain = SMTPServerStateMachine(settings: .init(hostname: "mx"))
        _ = plain.greeting()
        _ = Self.send(&plain, "EHLO c")
        #expect(Self.send(&plain, "STARTTLS") == .send([SMTPReply(502, EnhancedStatusCode(5, 5, 1), "Error: command not implemented")], close: false))
        var settings = SMTPServerStateMachine.Settings(hostname: "mx")
        settings.tlsAvailable = true
        settings.tlsRequired = true
        var strict = SMTPServerStateMachine(settings: settings)
        _ = strict.greeting()
        _ = Self.send(&strict, "EHLO c")
        #expect(Self.send(&strict, "MAIL FROM:<a@b>") == .send([SMTPReply(530, EnhancedStatusCode(5, 7, 0), "Must issue a STARTTLS command first")], close: false))
        var implicit = SMTPServerStateMachine(settings: settings)
        implicit.beginsInTLS()
        _ = implicit.greeting()
        _ = Self.send(&implicit, "EHLO c")
        #expect(Self.send(&implicit, "MAIL FROM:<a@b>") == .send([SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok")], close: false))
    }
}

@Suite("SMTP AUTH in the server state machine")
struct SMTPServerAuthTests {
    static func machine(required: Bool = true) -> SMTPServerStateMachine {
        var settings = SMTPServerStateMachine.Settings(hostname: "mx")
        settings.tlsAvailable = true
        settings.authEnabled = true
        settings.authRequired = required
        var machine = SMTPServerStateMachine(settings: settings)
        machine.beginsInTLS()
        _ = machine.greeting()
        _ = machine.receive(line: Array("EHLO c".utf8))
        return machine
    }

    static func line(_ machine: inout SMTPServerStateMachine, _ text: String) -> SMTPServerStateMachine.Action {
        machine.receive(line: Array(text.utf8))
    }

    @Test("PLAIN with an initial response; success, then MAIL is allowed and AUTH again refused")
    func plain() {
        var m = Self.machine()
        #expect(Self.line(&m, "MAIL FROM:<a@b>") == .send([SMTPReply(530, EnhancedStatusCode(5, 7, 0), "Authentication required")], close: false))
        let credentials = SASLCredentials(user: "jun", password: "secret")
        #expect(Self.line(&m, "AUTH PLAIN " + Base64.encode(credentials.plain)) == .authenticate(credentials, mechanism: "PLAIN"))
        #expect(m.authenticationFinished(.success("jun")) == .send([SMTPReply(235, EnhancedStatusCode(2, 7, 0), "Authentication successful")], close: false))
        #expect(m.authenticatedUser == "jun")
        #expect(Self.line(&m, "AUTH PLAIN") == .send([SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: already authenticated")], close: false))
        #expect(Self.line(&m, "MAIL FROM:<jun@b> AUTH=<>") == .send([SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok")], close: false))
    }

    @Test("LOGIN's two challenges; '*' aborts; bad base64 is refused; unknown mechanisms too")
    func login() {
        var m = Self.machine()
        #expect(Self.line(&m, "AUTH LOGIN") == .send([SMTPReply(334, nil, "VXNlcm5hbWU6")], close: false))
        #expect(Self.line(&m, Base64.encode(Array("jun".utf8))) == .send([SMTPReply(334, nil, "UGFzc3dvcmQ6")], close: false))
        #expect(Self.line(&m, Base64.encode(Array("pw".utf8))) == .authenticate(SASLCredentials(user: "jun", password: "pw"), mechanism: "LOGIN"))
        #expect(m.authenticationFinished(.failure("")) == .send([SMTPReply(535, EnhancedStatusCode(5, 7, 8), "Error: authentication failed")], close: false))
        _ = Self.line(&m, "AUTH PLAIN")
        #expect(Self.line(&m, "*") == .send([SMTPReply(501, EnhancedStatusCode(5, 7, 0), "Authentication aborted")], close: false))
        #expect(Self.line(&m, "AUTH PLAIN !!!!") == .send([SMTPReply(501, EnhancedStatusCode(5, 5, 2), "Cannot decode response")], close: false))
        #expect(Self.line(&m, "AUTH CRAM-MD5") == .send([SMTPReply(504, EnhancedStatusCode(5, 5, 4), "Unsupported authentication mechanism")], close: false))
    }

    @Test("a line too long inside an AUTH exchange ends the exchange: the next line is a command")
    func authLineTooLong() {
        var m = Self.machine()
        #expect(Self.line(&m, "AUTH LOGIN") == .send([SMTPReply(334, nil, "VXNlcm5hbWU6")], close: false))
        #expect(m.lineTooLong() == .send([SMTPReply(500, EnhancedStatusCode(5, 5, 6), "Authentication Exchange line is too long")], close: false))
        #expect(Self.line(&m, "NOOP") == .send([SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok")], close: false))
    }

    @Test("the third failure ends the session; without TLS AUTH is not offered or taken")
    func limits() {
        var m = Self.machine()
        let wrong = "AUTH PLAIN " + Base64.encode(SASLCredentials(user: "jun", password: "x").plain)
        for _ in 0..<2 {
            _ = Self.line(&m, wrong)
            _ = m.authenticationFinished(.failure("no"))
        }
        _ = Self.line(&m, wrong)
        guard case .send(let replies, let close) = m.authenticationFinished(.failure("no")) else { Issue.record("no reply"); return }
        #expect(close && replies.map(\.code) == [535, 421])

        var settings = SMTPServerStateMachine.Settings(hostname: "mx")
        settings.tlsAvailable = true
        settings.authEnabled = true
        var plain = SMTPServerStateMachine(settings: settings)
        _ = plain.greeting()
        guard case .send(let ehlo, _) = Self.line(&plain, "EHLO c") else { Issue.record("no EHLO"); return }
        #expect(!ehlo[0].lines.contains("AUTH PLAIN LOGIN"))
        #expect(Self.line(&plain, "AUTH PLAIN AGpqdW4AeA==") == .send([SMTPReply(538, EnhancedStatusCode(5, 7, 11), "Encryption required for requested authentication mechanism")], close: false))
    }

    @Test("SASL pieces: PLAIN messages, base64, Dovecot's protocol lines")
    func sasl() {
        #expect(SASLCredentials(plain: Array("admin\u{0}jun\u{0}pw".utf8)) == SASLCredentials(authorizationID: "admin", user: "jun", password: "pw"))
        #expect(SASLCredentials(plain: Array("\u{0}jun".utf8)) == nil)
        #expect(SASLCredentials(plain: Array("\u{0}\u{0}pw".utf8)) == nil)
        #expect(Base64.encode(Array("hello!?".utf8)) == "aGVsbG8hPw==")
        #expect(Base64.decode("aGVsbG8hPw==") == Array("hello!?".utf8))
        #expect(Base64.decode("aGVsbG8hPw=") == nil && Base64.decode("a=Vs") == nil && Base64.decode("****") == nil)
        #expect(DovecotAuth.request(id: 7, credentials: SASLCredentials(user: "jun", password: "pw"), clientAddress: "192.0.2.1",
                                    localAddress: "192.0.2.2", secured: true)
                == "AUTH\t7\tPLAIN\tservice=smtp\tnologin\tlip=192.0.2.2\trip=192.0.2.1\tsecured\tresp=AGp1bgBwdw==\n")
        #expect(DovecotAuth.parse("VERSION\t1\t2") == .handshake)
        #expect(DovecotAuth.parse("VERSION\t2\t0") == .incompatible("VERSION\t2\t0"))
        #expect(DovecotAuth.parse("DONE") == .handshakeDone)
        #expect(DovecotAuth.parse("OK\t7\tuser=jun") == .ok(id: 7, user: "jun"))
        #expect(DovecotAuth.parse("FAIL\t7\tuser=jun\treason=Password\u{1}tmismatch\ttemp") == .fail(id: 7, reason: "Password\tmismatch", temporary: true))
        #expect(DovecotAuth.escape("a\tb\nc\u{1}") == "a\u{1}tb\u{1}nc\u{1}1")
    }
}
