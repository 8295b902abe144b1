import NIOCore
import NIOPosix

/// What the master asked of a program through its control pipe.
public enum MasterRequest: Sendable {
    /// Finish what is in flight, then exit (reload: a new process with the new
    /// configuration takes over).
    case drain
    /// The master is stopping, or gone: exit soon.
    case stop
}

/// Watches the master's control pipe on an event loop (for NIO programs).
public enum MasterControl {
    public static func watch(fd: Int32, on group: EventLoopGroup,
                             handler: @escaping @Sendable (MasterRequest) -> Void) throws {
        _ = try NIOPipeBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ControlPipeHandler(handler: handler))
                }
            }
            .takingOwnershipOfDescriptor(input: fd)
            .wait()
    }
}

final class ControlPipeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let handler: @Sendable (MasterRequest) -> Void
    var stopped = false

    init(handler: @escaping @Sendable (MasterRequest) -> Void) {
        self.handler = handler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        while let byte = buffer.readInteger(as: UInt8.self) {
            switch byte {
            case UInt8(ascii: "R"): handler(.drain)
            case UInt8(ascii: "S"): stop()
            default: break
            }
        }
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        handler(.stop)
    }

    func channelInactive(context: ChannelHandlerContext) { stop() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelEvent, case .inputClosed = event as! ChannelEvent { stop() }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { stop() }
}
