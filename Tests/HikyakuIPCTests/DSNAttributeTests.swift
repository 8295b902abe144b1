import MailCore
import Testing
@testable import HikyakuIPC

@Suite("DSN parameters between the programs")
struct DSNAttributeTests {
    static let orcpt = OriginalRecipient(addressType: "rfc822", address: "B@example.jp")

    @Test("cleanup's begin carries NOTIFY and ORCPT per recipient, RET and ENVID")
    func begin() throws {
        var begin = CleanupProtocol.Begin(origin: .smtp, sender: "a@x", recipients: ["b@example.jp", "c@example.jp"])
        begin.ret = "HDRS"
        begin.envid = "E 1"
        begin.recipientDSN = [RecipientDSN(notify: [.success, .failure], originalRecipient: Self.orcpt), RecipientDSN()]
        let decoded = try CleanupProtocol.Begin(frame: begin.frame)
        #expect(decoded == begin)
        #expect(try CleanupProtocol.Begin(frame: CleanupProtocol.Begin(origin: .local, sender: "", recipients: ["x"]).frame).recipientDSN == [])
    }

    @Test("a begin whose per-recipient values do not line up or make no sense is refused")
    func badBegin() {
        var frame = CleanupProtocol.Begin(origin: .smtp, sender: "a@x", recipients: ["b@x", "c@x"]).frame
        frame.add(.recipientNotify, 2)
        frame.add(.orcpt, "")
        #expect(throws: IPCError.missingAttribute(key: IPCKey.recipientNotify.rawValue, type: IPCMessageType.cleanupBegin.rawValue)) {
            try CleanupProtocol.Begin(frame: frame)
        }
        frame.add(.recipientNotify, 9)
        frame.add(.orcpt, "")
        #expect(throws: IPCError.badAttribute(key: IPCKey.recipientNotify.rawValue, type: IPCMessageType.cleanupBegin.rawValue)) {
            try CleanupProtocol.Begin(frame: frame)
        }
        var badORCPT = CleanupProtocol.Begin(origin: .smtp, sender: "a@x", recipients: ["b@x"]).frame
        badORCPT.add(.recipientNotify, 0)
        badORCPT.add(.orcpt, "no type\nhere")
        #expect(throws: IPCError.badAttribute(key: IPCKey.orcpt.rawValue, type: IPCMessageType.cleanupBegin.rawValue)) {
            try CleanupProtocol.Begin(frame: badORCPT)
        }
    }

    @Test("local's result names the action of each delivered recipient")
    func resultActions() throws {
        let result = LocalProtocol.Result(outcomes: [
            (0, .delivered(EnhancedStatusCode(2, 0, 0), "delivered to mailbox")),
            (1, .delivered(EnhancedStatusCode(2, 0, 0), "alias expanded")),
            (2, .bounced(EnhancedStatusCode(5, 1, 1), "unknown user")),
        ], actions: [0: .delivered, 1: .expanded])
        let decoded = try LocalProtocol.Result(frame: result.frame)
        #expect(decoded == result)
        #expect(decoded.actions == [0: .delivered, 1: .expanded])
        var bad = result.frame
        bad.attributes.removeAll { $0.key == .dsnAction }
        for word in ["delivered", "exploded", ""] { bad.add(.dsnAction, word) }
        #expect(throws: IPCError.badAttribute(key: IPCKey.dsnAction.rawValue, type: IPCMessageType.localResult.rawValue)) {
            try LocalProtocol.Result(frame: bad)
        }
    }

    @Test("a maildrop file from sendmail -bs keeps NOTIFY and ORCPT per recipient")
    func maildrop() throws {
        let file = MaildropFile(requestedSender: "a@x", recipients: ["b@example.jp", "c@example.jp"], ret: "FULL", envid: "E",
                                recipientDSN: [RecipientDSN(notify: .never), RecipientDSN(originalRecipient: Self.orcpt)],
                                content: Array("x\n".utf8))
        #expect(try MaildropFile(decoding: file.encoded()) == file)
    }
}
