import Testing
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
