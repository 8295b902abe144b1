import HikyakuIPC
import NIOCore
import NIOPosix

/// Frames IPC messages on a NIO channel (DESIGN.md section 5).
public struct IPCFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = IPCFrame

    public init() {}

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let result = try buffer.withUnsafeReadableBytes { try IPCFrame.decode($0) }
        guard let (frame, used) = result else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: used)
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }
}

public final class IPCFrameEncoder: ChannelOutboundHandler {
    public typealias OutboundIn = IPCFrame
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        let bytes = frame.encoded()
        var buffer = context.channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }
}

/// The client end of a request/response IPC connection. Replies come back in
/// request order; frames that have no reply are sent with ``send(_:)``.
public final class IPCClient: @unchecked Sendable {
    // Confined to `channel.eventLoop`: every method hops there first.
    public let channel: Channel
    let handler: IPCClientHandler

    init(channel: Channel, handler: IPCClientHandler) {
        self.channel = channel
        self.handler = handler
    }

    /// Connects to a service socket.
    public static func connect(path: String, on eventLoop: EventLoop, timeout: TimeAmount = .seconds(30)) -> EventLoopFuture<IPCClient> {
        let handler = IPCClientHandler(timeout: timeout)
        return ClientBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(IPCFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(IPCFrameEncoder())
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(unixDomainSocketPath: path)
            .map { IPCClient(channel: $0, handler: handler) }
    }

    public var isActive: Bool { channel.isActive }

    public func request(_ frame: IPCFrame) -> EventLoopFuture<IPCFrame> {
        let promise = channel.eventLoop.makePromise(of: IPCFrame.self)
        channel.eventLoop.execute {
            self.handler.enqueue(promise, channel: self.channel)
            self.channel.writeAndFlush(frame).whenFailure { error in
                self.handler.fail(promise, error)
            }
        }
        return promise.futureResult
    }

    public func send(_ frame: IPCFrame) -> EventLoopFuture<Void> {
        channel.writeAndFlush(frame)
    }

    public func close() {
        channel.close(promise: nil)
    }
}

final class IPCClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = IPCFrame

    // All state is touched on the channel's event loop only.
    var pending: [(EventLoopPromise<IPCFrame>, Scheduled<Void>?)] = []
    let timeout: TimeAmount

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func enqueue(_ promise: EventLoopPromise<IPCFrame>, channel: Channel) {
        guard channel.isActive else {
            promise.fail(IPCError.peerClosed)
            return
        }
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            // A peer that does not answer in time is treated as dead: fail
            // everything and close, so no later reply is matched wrongly.
            self.failAll(IPCError.timedOut)
            channel.close(promise: nil)
        }
        pending.append((promise, timer))
    }

    func fail(_ promise: EventLoopPromise<IPCFrame>, _ error: Error) {
        if let index = pending.firstIndex(where: { $0.0.futureResult === promise.futureResult }) {
            pending[index].1?.cancel()
            pending.remove(at: index)
        }
        promise.fail(error)
    }

    func failAll(_ error: Error) {
        let all = pending
        pending.removeAll()
        for (promise, timer) in all {
            timer?.cancel()
            promise.fail(error)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard !pending.isEmpty else {
            // A reply nobody asked for: the stream is out of step.
            context.close(promise: nil)
            return
        }
        let (promise, timer) = pending.removeFirst()
        timer?.cancel()
        promise.succeed(frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(IPCError.peerClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failAll(error)
        context.close(promise: nil)
    }
}

/// Serves IPC requests on a listening socket the master passed. A client
/// that sends nothing for `idleTimeout` is disconnected, so a hung or
/// stopped peer cannot hold resources for ever.
public enum IPCServer {
    public static func serve(
        listenFD: Int32, group: EventLoopGroup, idleTimeout: TimeAmount = .hours(1),
        makeHandler: @escaping @Sendable () -> any ChannelHandler
    ) throws -> Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idleTimeout))
                    try channel.pipeline.syncOperations.addHandler(IdleCloser())
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(IPCFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(IPCFrameEncoder())
                    try channel.pipeline.syncOperations.addHandler(makeHandler())
                }
            }
            .withBoundSocket(listenFD)
            .wait()
    }
}

/// Closes a connection when IdleStateHandler reports no reads.
final class IdleCloser: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
