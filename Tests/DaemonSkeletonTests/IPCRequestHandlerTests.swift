import DaemonSkeleton
import HikyakuIPC
import NIOCore
import NIOEmbedded
import Testing

@Suite("Answering IPC requests")
struct IPCRequestHandlerTests {
    static func frame(_ type: IPCMessageType, _ text: String) -> IPCFrame {
        var frame = IPCFrame(type)
        frame.add(.text, text)
        return frame
    }

    static func connect(_ channel: EmbeddedChannel) throws {
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/private/test")).wait()
    }

    @Test("replies given at once are written in order, none for a wake-up, and nil closes the connection")
    func immediate() throws {
        let channel = EmbeddedChannel(handler: IPCRequestHandler { request in
            switch request.string(.text) {
            case "list": return [Self.frame(.showqEntry, "1"), Self.frame(.showqEntry, "2"), IPCFrame(.showqEnd)]
            case "wake": return []
            default: return nil
            }
        })
        try Self.connect(channel)
        try channel.writeInbound(Self.frame(.showqList, "list"))
        #expect(try channel.readOutbound(as: IPCFrame.self)?.string(.text) == "1")
        #expect(try channel.readOutbound(as: IPCFrame.self)?.string(.text) == "2")
        #expect(try channel.readOutbound(as: IPCFrame.self)?.type == .showqEnd)
        try channel.writeInbound(Self.frame(.qmgrQueued, "wake"))
        #expect(try channel.readOutbound(as: IPCFrame.self) == nil)
        #expect(channel.isActive)
        try channel.writeInbound(Self.frame(.error, "nonsense"))
        #expect(try channel.readOutbound(as: IPCFrame.self) == nil)
        #expect(!channel.isActive)
    }

    @Test("a reply that comes later is written when it comes; a failed one closes the connection")
    func deferred() throws {
        let loop = EmbeddedEventLoop()
        let pending = loop.makePromise(of: IPCFrame.self)
        let channel = EmbeddedChannel(handler: IPCRequestHandler(on: loop) { request in
            request.string(.text) == "fail" ? loop.makeFailedFuture(IPCError.peerClosed) : pending.futureResult
        }, loop: loop)
        try Self.connect(channel)
        try channel.writeInbound(Self.frame(.smtpDeliver, "deliver"))
        loop.run()
        #expect(try channel.readOutbound(as: IPCFrame.self) == nil)
        pending.succeed(Self.frame(.smtpResult, "done"))
        loop.run()
        #expect(try channel.readOutbound(as: IPCFrame.self)?.string(.text) == "done")
        #expect(channel.isActive)
        try channel.writeInbound(Self.frame(.smtpDeliver, "fail"))
        loop.run()
        #expect(!channel.isActive)
    }

    @Test("the control pipe's bytes", arguments: [
        (UInt8(ascii: "R"), MasterRequest?.some(.drain)), (UInt8(ascii: "S"), .stop), (UInt8(ascii: "x"), nil),
    ])
    func controlBytes(byte: UInt8, request: MasterRequest?) {
        #expect(MasterRequest(controlByte: byte) == request)
    }
}
