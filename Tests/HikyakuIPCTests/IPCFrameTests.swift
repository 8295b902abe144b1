import MailCore
import Testing
@testable import HikyakuIPC

@Suite("IPC frames")
struct IPCFrameTests {
    @Test("frames round-trip, and partial input asks for more")
    func roundTrip() throws {
        var frame = IPCFrame(.cleanupBegin)
        frame.add(.sender, "a@example.org")
        frame.add(.recipient, "b@example.jp")
        frame.add(.recipient, "c@example.jp")
        frame.add(.size, -5)
        frame.add(.found, true)
        let bytes = frame.encoded()
        for cut in 0..<bytes.count {
            #expect(try IPCFrame.decode(Array(bytes[..<cut])) == nil)
        }
        let (decoded, used) = try #require(try IPCFrame.decode(bytes + [1, 2, 3]))
        #expect(used == bytes.count)
        #expect(decoded == frame)
        #expect(decoded.strings(.recipient) == ["b@example.jp", "c@example.jp"])
        #expect(decoded.int(.size) == -5 && decoded.bool(.found) == true)
    }

    @Test("hostile frames are refused before any allocation", arguments: [
        [0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 1] as [UInt8],
        [0, 0, 0, 3, 9, 1, 1],
        [0, 0, 0, 3, 1, 0x77, 0x77],
        [0, 0, 0, 9, 1, 1, 1, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF],
    ])
    func hostile(bytes: [UInt8]) {
        #expect(throws: IPCError.self) { try IPCFrame.decode(bytes) }
    }

    @Test("typed messages survive the trip")
    func messages() throws {
        let begin = CleanupProtocol.Begin(origin: .smtp, sender: "", recipients: ["x@y"], clientName: "localhost",
                                          clientAddress: "127.0.0.1", heloName: "h", protocolName: "ESMTP", bodyType: "8BITMIME")
        #expect(try CleanupProtocol.Begin(frame: begin.frame) == begin)
        let id = QueueID(seconds: 5, microseconds: 1, inode: 9)
        #expect(try CleanupProtocol.Reply(frame: CleanupProtocol.Reply.ok(id).frame) == .ok(id))
        let refused = CleanupProtocol.Reply.refused(SMTPReply(452, EnhancedStatusCode(4, 3, 1), "Insufficient system storage"))
        #expect(try CleanupProtocol.Reply(frame: refused.frame) == refused)
        let request = LocalProtocol.Request(queueID: id, sender: "a@b", arrivalSeconds: 5, contentOffset: 100, contentLength: 7,
                                            recipients: [.init(index: 1, address: "u@h", originalRecipient: "")],
                                            arrivalMicroseconds: 5_000_001, activatedAt: 6, dispatchedAt: 7)
        #expect(try LocalProtocol.Request(frame: request.frame) == request)
        let result = LocalProtocol.Result(outcomes: [(1, .bounced(EnhancedStatusCode(5, 1, 1), "unknown user"))])
        #expect(try LocalProtocol.Result(frame: result.frame) == result)
        let resolution = AliasProtocol.Resolution(routeClass: .remote, nexthop: "example.org")
        #expect(try AliasProtocol.Resolution(frame: resolution.frame) == resolution)
        #expect(try AliasProtocol.Expansion(frame: AliasProtocol.Expansion(targets: nil).frame).targets == nil)
        #expect(throws: IPCError.unexpectedMessage(IPCMessageType.cleanupReply.rawValue)) {
            try CleanupProtocol.Begin(frame: CleanupProtocol.Reply.ok(id).frame)
        }
    }

    @Test("an expansion carries hints for its targets, within its budget")
    func expansionHints() throws {
        let local = AliasProtocol.Resolution(routeClass: .local, localUser: "fan01", mailer: "local", user: "fan01")
        let remote = AliasProtocol.Resolution(routeClass: .remote, nexthop: "example.org", mailer: "esmtp", user: "x@example.org")
        let expansion = AliasProtocol.Expansion(targets: ["fan01", "x@example.org"], hints: [
            AliasProtocol.Hint(target: "fan01", resolution: local, notAlias: "fan01"),
            AliasProtocol.Hint(target: "x@example.org", resolution: remote, notAlias: nil),
        ])
        let (decoded, _) = try #require(try IPCFrame.decode(expansion.frame.encoded()))
        #expect(try AliasProtocol.Expansion(frame: decoded) == expansion)

        // A list too long for one frame's hints: the targets all go, the
        // hints stop at the budget, and the frame stays under the maximum.
        let many = (0..<20_000).map { "member\($0)" }
        let big = AliasProtocol.Expansion(targets: many, hints: many.map {
            AliasProtocol.Hint(target: $0, resolution: AliasProtocol.Resolution(routeClass: .local, localUser: $0, mailer: "local", user: $0),
                               notAlias: $0)
        })
        let bytes = big.frame.encoded()
        #expect(bytes.count < IPCFrame.maximumFrameSize)
        let back = try AliasProtocol.Expansion(frame: try #require(try IPCFrame.decode(bytes)).0)
        #expect(back.targets == many)
        #expect(back.hints.count > 100 && back.hints.count < many.count)
        #expect(back.hints == Array(big.hints.prefix(back.hints.count)))
    }
}
