import MailCore
import Testing
@testable import SMTPProtocol

@Suite("SMTP client session")
struct SMTPClientSessionTests {
    static let settings = SMTPClientSession.Settings(heloName: "mail.example.test", tlsPolicy: .may, peer: "mx.example.org[192.0.2.1]:25")

    static func reply(_ text: String) -> SMTPReply {
        var reader = SMTPReplyReader()
        var result: SMTPReply? = nil
        for line in text.split(separator: "\n") { result = try! reader.feed(line: String(line)) }
        return result!
    }

    static let ehlo = "250-mx.example.org\n250-PIPELINING\n250-SIZE 1000\n250-8BITMIME\n250-DSN\n250 SMTPUTF8"

    /// A session past EHLO with the given extensions.
    static func ready(_ ehlo: String = ehlo, policy: SMTPClientSession.TLSPolicy = .may) -> SMTPClientSession {
        var session = SMTPClientSession(settings: .init(heloName: "mail.example.test", tlsPolicy: policy, peer: "mx.example.org[192.0.2.1]:25"))
        #expect(session.received(reply("220 mx.example.org ESMTP")) == [.send(["EHLO mail.example.test"])])
        #expect(session.received(reply(ehlo)) == [.ready])
        return session
    }

    static let two = SMTPClientSession.Transaction(
        sender: "a@example.test",
        recipients: [.init(address: "b@example.org", notify: "SUCCESS,FAILURE", originalRecipient: "rfc822;B+1@example.org"),
                     .init(address: "c@example.org")],
        size: 500, eightBit: true, ret: "HDRS", envid: "id=1")

    @Test("replies: continuation lines, enhanced codes taken off each line, hostile lines refused")
    func replyReader() throws {
        var reader = SMTPReplyReader()
        #expect(try reader.feed(line: "250-2.1.0 first") == nil)
        #expect(try reader.feed(line: "250 2.1.0 second") == SMTPReply(250, EnhancedStatusCode(2, 1, 0), lines: ["first", "second"]))
        #expect(try reader.feed(line: "550 no enhanced code") == SMTPReply(550, nil, "no enhanced code"))
        #expect(try reader.feed(line: "451 5.1.1 wrong class") == SMTPReply(451, nil, "5.1.1 wrong class"))
        #expect(try reader.feed(line: "250") == SMTPReply(250, nil, ""))
        #expect(throws: SMTPReplyReader.Failure.self) { try reader.feed(line: "hello") }
        var mixed = SMTPReplyReader()
        _ = try mixed.feed(line: "250-a")
        #expect(throws: SMTPReplyReader.Failure.self) { try mixed.feed(line: "550 b") }
        var long = SMTPReplyReader()
        #expect(throws: SMTPReplyReader.Failure.tooManyLines) {
            for _ in 0...SMTPReplyReader.maximumLines { _ = try long.feed(line: "250-x") }
        }
    }

    @Test("pipelined transaction with SIZE, 8BITMIME and DSN parameters in one write")
    func pipelined() {
        var session = Self.ready()
        #expect(session.extensions.size == 1000 && session.extensions.dsn && session.extensions.pipelining)
        #expect(session.begin(Self.two) == [.send([
            "MAIL FROM:<a@example.test> SIZE=500 BODY=8BITMIME RET=HDRS ENVID=id+3D1",
            "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2B1@example.org",
            "RCPT TO:<c@example.org>",
            "DATA"])])
        #expect(session.received(Self.reply("250 2.1.0 Ok")) == [])
        #expect(session.received(Self.reply("250 2.1.5 Ok")) == [])
        #expect(session.received(Self.reply("550 5.1.1 <c@example.org>: User unknown")) == [])
        #expect(session.received(Self.reply("354 go ahead")) == [.sendContent(downgrade: false)])
        #expect(session.contentSent)
        let done = session.received(Self.reply("250 2.0.0 Ok: queued as X"))
        #expect(done == [.finished([
            .init(index: 0, reply: SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok: queued as X"), inReplyTo: "end of DATA"),
            .init(index: 1, reply: SMTPReply(550, EnhancedStatusCode(5, 1, 1), "<c@example.org>: User unknown"), inReplyTo: "RCPT TO")]),
            .ready])
        // The session carries the next message at once.
        let again = SMTPClientSession.Transaction(sender: "", recipients: [.init(address: "d@example.org")], size: 10)
        #expect(session.begin(again) == [.send(["MAIL FROM:<> SIZE=10", "RCPT TO:<d@example.org>", "DATA"])])
        #expect(session.transactions == 2)
    }

    @Test("lock-step without PIPELINING; 8-bit content is downgraded for a peer without 8BITMIME")
    func lockStep() {
        var session = Self.ready("250-mx\n250 HELP")
        #expect(session.begin(Self.two) == [.send(["MAIL FROM:<a@example.test>"])])
        #expect(session.received(Self.reply("250 ok")) == [.send(["RCPT TO:<b@example.org>"])])
        #expect(session.received(Self.reply("450 4.2.0 greylisted")) == [.send(["RCPT TO:<c@example.org>"])])
        #expect(session.received(Self.reply("250 ok")) == [.send(["DATA"])])
        #expect(session.received(Self.reply("354 go")) == [.sendContent(downgrade: true)])
        let done = session.received(Self.reply("250 ok"))
        #expect(done == [.finished([
            .init(index: 0, reply: SMTPReply(450, EnhancedStatusCode(4, 2, 0), "greylisted"), inReplyTo: "RCPT TO"),
            .init(index: 1, reply: SMTPReply(250, nil, "ok"), inReplyTo: "end of DATA")]), .ready])
    }

    @Test("MAIL refused: every recipient shares the reply, then RSET before the next transaction")
    func mailRefused() {
        var session = Self.ready()
        _ = session.begin(Self.two)
        let mail = Self.reply("553 5.7.1 sender refused")
        #expect(session.received(mail) == [])
        #expect(session.received(Self.reply("503 5.5.1 need MAIL")) == [])
        #expect(session.received(Self.reply("503 5.5.1 need MAIL")) == [])
        #expect(session.received(Self.reply("554 5.5.1 no valid recipients")) == [.finished([
            .init(index: 0, reply: mail, inReplyTo: "MAIL FROM"), .init(index: 1, reply: mail, inReplyTo: "MAIL FROM")]),
            .send(["RSET"])])
        #expect(session.received(Self.reply("250 ok")) == [.ready])
    }

    @Test("no recipient accepted in lock-step: no DATA, RSET")
    func noneAccepted() {
        var session = Self.ready("250-mx\n250 8BITMIME")
        _ = session.begin(SMTPClientSession.Transaction(sender: "a@x", recipients: [.init(address: "b@y")], size: 1))
        _ = session.received(Self.reply("250 ok"))
        let refused = Self.reply("550 5.1.1 no")
        #expect(session.received(refused) == [.finished([.init(index: 0, reply: refused, inReplyTo: "RCPT TO")]), .send(["RSET"])])
    }

    @Test("a 354 after every RCPT failed gets an empty message")
    func emptyData() {
        var session = Self.ready()
        _ = session.begin(SMTPClientSession.Transaction(sender: "a@x", recipients: [.init(address: "b@y")], size: 1))
        _ = session.received(Self.reply("250 ok"))
        _ = session.received(Self.reply("550 no"))
        #expect(session.received(Self.reply("354 go")) == [.send(["."])])
        #expect(session.received(Self.reply("554 no valid recipients")) == [.finished([
            .init(index: 0, reply: SMTPReply(550, nil, "no"), inReplyTo: "RCPT TO")]), .send(["RSET"])])
    }

    @Test("SIZE and SMTPUTF8 limits decide without talking")
    func localRefusals() {
        var session = Self.ready("250-mx\n250 SIZE 100")
        let big = SMTPClientSession.Transaction(sender: "a@x", recipients: [.init(address: "b@y")], size: 101)
        let actions = session.begin(big)
        guard case .finished(let results) = actions.first else { Issue.record("\(actions)"); return }
        #expect(results[0].reply.enhanced == EnhancedStatusCode(5, 3, 4) && !results[0].fromServer)
        #expect(actions.last == .ready)
        let utf8 = SMTPClientSession.Transaction(sender: "a@x", recipients: [.init(address: "ü@y")], size: 1, smtpUTF8: true)
        guard case .finished(let r2) = session.begin(utf8).first else { Issue.record("no result"); return }
        #expect(r2[0].reply.enhanced == EnhancedStatusCode(5, 6, 7))
        var capable = Self.ready()
        #expect(capable.begin(utf8) == [.send(["MAIL FROM:<a@x> SIZE=1 SMTPUTF8", "RCPT TO:<ü@y>", "DATA"])])
    }

    @Test("EHLO refused falls back to HELO; a bad greeting refuses the host")
    func heloFallback() {
        var session = SMTPClientSession(settings: Self.settings)
        _ = session.received(Self.reply("220 old"))
        #expect(session.received(Self.reply("502 5.5.2 what")) == [.send(["HELO mail.example.test"])])
        #expect(session.received(Self.reply("250 hi")) == [.ready])
        #expect(!session.esmtp)
        var busy = SMTPClientSession(settings: Self.settings)
        #expect(busy.received(Self.reply("554 5.7.1 go away")) == [
            .refused(.reply(SMTPReply(554, EnhancedStatusCode(5, 7, 1), "go away"), inReplyTo: "initial greeting")),
            .send(["QUIT"]), .close])
    }

    @Test("STARTTLS when offered, EHLO again over TLS; encrypt refuses a peer without it")
    func startTLS() {
        var session = SMTPClientSession(settings: Self.settings)
        _ = session.received(Self.reply("220 mx"))
        #expect(session.received(Self.reply("250-mx\n250-PIPELINING\n250 STARTTLS")) == [.send(["STARTTLS"])])
        #expect(session.received(Self.reply("220 2.0.0 ready")) == [.startTLS])
        #expect(session.stage == "TLS handshake")
        #expect(session.tlsEstablished() == [.send(["EHLO mail.example.test"])])
        #expect(session.received(Self.reply("250-mx\n250-PIPELINING\n250 STARTTLS")) == [.ready])
        #expect(session.tlsActive)

        var strict = SMTPClientSession(settings: .init(heloName: "h", tlsPolicy: .encrypt, peer: "p"))
        _ = strict.received(Self.reply("220 mx"))
        #expect(strict.received(Self.reply("250-mx\n250 PIPELINING")) == [.refused(.tlsRequired), .send(["QUIT"]), .close])

        var failing = SMTPClientSession(settings: Self.settings)
        _ = failing.received(Self.reply("220 mx"))
        _ = failing.received(Self.reply("250-mx\n250 STARTTLS"))
        _ = failing.received(Self.reply("220 go"))
        #expect(failing.tlsFailed("handshake failed") == [.refused(.tlsFailed("handshake failed")), .close])

        var none = SMTPClientSession(settings: .init(heloName: "h", tlsPolicy: .none, peer: "p"))
        _ = none.received(Self.reply("220 mx"))
        #expect(none.received(Self.reply("250-mx\n250 STARTTLS")) == [.ready])
    }

    @Test("421 mid-transaction resolves every open recipient; a lost connection defers them")
    func serverGoesAway() {
        var session = Self.ready()
        _ = session.begin(Self.two)
        _ = session.received(Self.reply("250 ok"))
        let bye = Self.reply("421 4.3.2 shutting down")
        #expect(session.received(bye) == [.finished([
            .init(index: 0, reply: bye, inReplyTo: "RCPT TO"), .init(index: 1, reply: bye, inReplyTo: "RCPT TO")]), .close])

        var lost = Self.ready()
        _ = lost.begin(Self.two)
        _ = lost.received(Self.reply("250 ok"))
        _ = lost.received(Self.reply("250 ok"))
        let results = lost.abandon(reason: "lost connection with mx.example.org[192.0.2.1] while sending RCPT TO")
        #expect(results.map(\.index) == [0, 1])
        #expect(results.allSatisfy { $0.reply.code == 451 && !$0.fromServer && $0.connectionLost })
    }

    @Test("the wire form: CRLF everywhere, dot-stuffing, a final line ending")
    func outgoing() {
        #expect(OutgoingContent.encode(Array("a\n.b\n..\n.\nc".utf8)) == Array("a\r\n..b\r\n...\r\n..\r\nc\r\n".utf8))
        #expect(OutgoingContent.encode(Array("x\r\ny\n".utf8)) == Array("x\r\ny\r\n".utf8))
        #expect(OutgoingContent.encode([UInt8]()) == [])
    }
}
