import MailCore
import Testing
@testable import SMTPProtocol

@Suite("DSN parameters in the SMTP dialogue (RFC 3461)")
struct SMTPServerDSNTests {
    typealias Machine = SMTPServerStateMachine

    /// Runs the lines and returns the last reply and the envelope handed to
    /// the queue at DATA (nil when DATA was not reached).
    static func run(_ lines: [String], greeting: String = "EHLO client") -> (String, Machine.Envelope?) {
        var machine = Machine(settings: .init(hostname: "mx.example.jp"))
        _ = machine.greeting()
        var last = ""
        var opened: Machine.Envelope? = nil
        for line in [greeting] + lines {
            var action = machine.receive(line: Array(line.utf8))
            while true {
                switch action {
                case .verifyRecipient:
                    action = machine.recipientVerified(.accept)
                    continue
                case .openMessage(let envelope):
                    opened = envelope
                    action = machine.dataStarted()
                    continue
                default:
                    break
                }
                break
            }
            last = SMTPServerStateMachineTests.replies(action).last ?? ""
        }
        return (last, opened)
    }

    @Test("RET, ENVID, NOTIFY and ORCPT are accepted, decoded and kept per recipient")
    func accepted() throws {
        let (reply, envelope) = Self.run([
            "MAIL FROM:<a@x.org> RET=hdrs ENVID=QQ+2B314159+3Dpi",
            "RCPT TO:<b@x.org> NOTIFY=success,FAILURE ORCPT=rfc822;b+2Bextra@x.org",
            "RCPT TO:<c@x.org>",
            "RCPT TO:<d@x.org> NOTIFY=NEVER",
            "DATA",
        ])
        #expect(reply == "354 End data with <CR><LF>.<CR><LF>")
        let opened = try #require(envelope)
        #expect(opened.ret == .headers)
        #expect(opened.envelopeID == "QQ+314159=pi")
        #expect(opened.recipients.map(\.localPart) == ["b", "c", "d"])
        #expect(opened.recipientDSN == [
            RecipientDSN(notify: [.success, .failure], originalRecipient: OriginalRecipient(addressType: "rfc822", address: "b+extra@x.org")),
            RecipientDSN(),
            RecipientDSN(notify: .never),
        ])
    }

    @Test("a rejected recipient leaves no DSN entry behind")
    func rejectedRecipient() {
        var machine = Machine(settings: .init(hostname: "mx.example.jp"))
        _ = machine.greeting()
        _ = machine.receive(line: Array("EHLO c".utf8))
        _ = machine.receive(line: Array("MAIL FROM:<a@x.org>".utf8))
        _ = machine.receive(line: Array("RCPT TO:<bad@x.org> NOTIFY=SUCCESS".utf8))
        _ = machine.recipientVerified(.reject(SMTPReply(550, EnhancedStatusCode(5, 1, 1), "User unknown")))
        _ = machine.receive(line: Array("RCPT TO:<good@x.org> NOTIFY=DELAY".utf8))
        _ = machine.recipientVerified(.accept)
        #expect(machine.currentEnvelope?.recipientDSN == [RecipientDSN(notify: .delay)])
    }

    @Test("each bad DSN parameter has Postfix's reply", arguments: [
        ("MAIL FROM:<a@x.org> RET=BODY", "501 5.5.4 Bad RET parameter syntax"),
        ("MAIL FROM:<a@x.org> RET=FULL RET=HDRS", "501 5.5.4 Bad RET parameter syntax"),
        ("MAIL FROM:<a@x.org> RET", "501 5.5.4 Bad RET parameter syntax"),
        ("MAIL FROM:<a@x.org> ENVID=a+2", "501 5.5.4 Bad ENVID parameter syntax"),
        ("MAIL FROM:<a@x.org> ENVID=a+ZZb", "501 5.5.4 Bad ENVID parameter syntax"),
        ("MAIL FROM:<a@x.org> ENVID=a=b", "501 5.5.4 Bad ENVID parameter syntax"),
        ("MAIL FROM:<a@x.org> ENVID=a+0Db", "501 5.5.4 Bad ENVID parameter syntax"),
        ("MAIL FROM:<a@x.org> ENVID=a ENVID=b", "501 5.5.4 Bad ENVID parameter syntax"),
        ("MAIL FROM:<a@x.org> ENVID=" + String(repeating: "e", count: 101), "501 5.5.4 Bad ENVID parameter syntax"),
        ("MAIL FROM:<a@x.org> ENVID=" + String(repeating: "+41", count: 101), "501 5.5.4 Bad ENVID parameter syntax"),
    ])
    func badMailParameters(line: String, expected: String) {
        #expect(Self.run([line]).0 == expected)
    }

    @Test("each bad RCPT parameter has Postfix's reply", arguments: [
        ("NOTIFY=NEVER,FAILURE", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
        ("NOTIFY=SUCCESS,SOMETIMES", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
        ("NOTIFY=SUCCESS,", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
        ("NOTIFY=,DELAY", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
        ("NOTIFY", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
        ("NOTIFY=DELAY NOTIFY=FAILURE", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
        ("ORCPT=b@x.org", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
        ("ORCPT=;b@x.org", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
        ("ORCPT=rfc822;", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
        ("ORCPT=rfc822;b+0A@x.org", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
        ("ORCPT=rfc822;b+C3+A9@x.org", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
        ("ORCPT=rfc@822;b@x.org", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
        ("ORCPT=rfc822;b@x.org ORCPT=rfc822;c@x.org", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
        ("ORCPT=rfc822;" + String(repeating: "o", count: 501), "501 5.5.4 Error: Bad ORCPT parameter syntax"),
        ("NOTIFY=", "501 5.5.4 Bad parameter syntax: NOTIFY="),
        ("RET=FULL", "555 5.5.4 Unsupported option: RET"),
        ("ENVID=x", "555 5.5.4 Unsupported option: ENVID"),
    ])
    func badRecipientParameters(parameters: String, expected: String) {
        #expect(Self.run(["MAIL FROM:<a@x.org>", "RCPT TO:<b@x.org> " + parameters]).0 == expected)
    }

    @Test("NOTIFY on MAIL is an unsupported option")
    func wrongCommand() {
        #expect(Self.run(["MAIL FROM:<a@x.org> NOTIFY=NEVER"]).0 == "555 5.5.4 Unsupported option: NOTIFY")
    }

    @Test("after HELO no DSN parameter is accepted")
    func helo() {
        #expect(Self.run(["MAIL FROM:<a@x.org> RET=FULL"], greeting: "HELO c").0 == "555 5.5.4 Unsupported option: RET")
        #expect(Self.run(["MAIL FROM:<a@x.org>", "RCPT TO:<b@x.org> NOTIFY=NEVER"], greeting: "HELO c").0
            == "555 5.5.4 Unsupported option: NOTIFY")
    }

    @Test("ORCPT and ENVID at their limits are accepted")
    func limits() throws {
        let (_, envelope) = Self.run([
            "MAIL FROM:<a@x.org> ENVID=" + String(repeating: "+41", count: 100),
            "RCPT TO:<b@x.org> ORCPT=rfc822;" + String(repeating: "o", count: 500),
            "DATA",
        ])
        let opened = try #require(envelope)
        #expect(opened.envelopeID == String(repeating: "A", count: 100))
        #expect(opened.recipientDSN.first?.originalRecipient?.address.count == 500)
    }
}
