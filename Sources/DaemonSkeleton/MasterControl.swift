#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix

/// What the master asked of a program through its control pipe.
public enum MasterRequest: Sendable {
    /// Finish what is in flight, then exit (reload: a new process with the new
    /// configuration takes over).
    case drain
    /// The master is stopping, or gone: exit soon.
    case stop

    /// What a byte on the control pipe asks: `R` drain, `S` stop; nil for
    /// anything else.
    public init?(controlByte byte: UInt8) {
        switch byte {
        case UInt8(ascii: "R"): self = .drain
        case UInt8(ascii: "S"): self = .stop
        default: return nil
        }
    }
}

/// Watches the master's control pipe on an event loop (for NIO programs).
public enum MasterControl {
    /// Carries out the master's requests on `eventLoop`, the one the
    /// daemon's state lives on: `drain` when it asks the daemon to finish
    /// what is in flight and exit (a reload), `stop` once when it stops or
    /// is gone (by default: exit at once). A program run without the master
    /// has no control pipe, and nothing is watched.
    public static func watch(_ context: DaemonContext, on eventLoop: EventLoop,
                             drain: @escaping @Sendable () -> Void,
                             stop: @escaping @Sendable () -> Void = { exit(0) }) throws {
        guard let fd = context.controlFD else { return }
        try watch(fd: fd, on: eventLoop) { request in
            switch request {
            case .drain: drain()
            case .stop: stop()
            }
        }
        // Every program watches the pipe once its listeners serve.
        announceReady(context)
    }

    /// Tells the master the program serves: a `READY=1` line on the log
    /// pipe, which the master takes as a signal, not a log line. The master
    /// tells systemd it is ready once every program has said so.
    public static func announceReady(_ context: DaemonContext) {
        guard context.underMaster else { return }
        var line = Array("READY=1\n".utf8)
        _ = line.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress!, $0.count) }
    }

    static func watch(fd: Int32, on group: EventLoopGroup,
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
            switch MasterRequest(controlByte: byte) {
            case .drain: handler(.drain)
            case .stop: stop()
            case nil: break
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
