import Testing
import MailCore
@testable import HikyakuIPC

@Suite("Maildrop files")
struct MaildropFileTests {
    @Test("every field survives the round trip; the content is kept byte for byte")
    func roundTrip() throws {
        let file = MaildropFile(requestedSender: "<>", recipients: ["a@example.org", "b"], removeBcc: true,
                                fullName: "Cron Daemon", bodyType: "8BITMIME", notify: "FAILURE,DELAY", ret: "HDRS",
                                envid: "env-1", ignoredOptions: ["-oem", "-X/tmp/t"], smtpProtocol: "ESMTP",
                                content: Array("Subject: x\n\n\u{0}\u{1}HKD\n".utf8))
        #expect(try MaildropFile(decoding: file.encoded()) == file)
        let plain = MaildropFile(requestedSender: nil, recipients: ["a"], content: Array("x\n".utf8))
        #expect(try MaildropFile(decoding: plain.encoded()).smtpProtocol == nil)
    }

    @Test("a file without the magic, a torn envelope or no recipient is refused")
    func refusals() {
        let good = MaildropFile(requestedSender: nil, recipients: ["a"], content: Array("x\n".utf8)).encoded()
        #expect(throws: MaildropFile.DecodeError.badMagic) { try MaildropFile(decoding: Array("From x\n".utf8)) }
        #expect(throws: MaildropFile.DecodeError.self) { try MaildropFile(decoding: Array(good.prefix(9))) }
        let none = MaildropFile(requestedSender: nil, recipients: [], content: []).encoded()
        #expect(throws: MaildropFile.DecodeError.noRecipients) { try MaildropFile(decoding: none) }
    }
}

@Suite("SMTP delivery messages")
struct SMTPDeliveryProtocolTests {
    @Test("a request and a result survive the frame codec")
    func roundTrip() throws {
        let request = SMTPDeliveryProtocol.Request(
            queueID: QueueID("6KVMRd0nKtz2ns3p")!, sender: "", mailer: "esmtp", nexthop: "[192.0.2.1]:2525",
            recipients: [.init(index: 3, address: "a@example.org", notify: "SUCCESS", originalRecipient: "rfc822;A@example.org"),
                         .init(index: 7, address: "b@example.org")],
            contentOffset: 120, contentLength: 4000, bodyType: "8BITMIME", smtpUTF8: true, ret: "HDRS", envid: "e1",
            arrivalMicroseconds: 1, activatedAt: 2, dispatchedAt: 3)
        let (decoded, _) = try IPCFrame.decode(request.frame.encoded())!
        #expect(try SMTPDeliveryProtocol.Request(frame: decoded) == request)

        let result = SMTPDeliveryProtocol.Result(outcomes: [
            .init(index: 3, outcome: .delivered(EnhancedStatusCode(2, 0, 0), "250 2.0.0 Ok"), remoteMTA: "mx.example.org",
                  diagnostic: "250 2.0.0 Ok"),
            .init(index: 7, outcome: .bounced(EnhancedStatusCode(5, 1, 1), "host said: 550"), remoteMTA: "", diagnostic: "")],
            destinationFailed: false, peerDSN: true)
        let (frame, _) = try IPCFrame.decode(result.frame.encoded())!
        #expect(try SMTPDeliveryProtocol.Result(frame: frame) == result)
    }
}
