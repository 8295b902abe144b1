import HikyakuIPC
import NIOCore

/// Answers the requests on one IPC connection (the server end of
/// ``IPCServer``): each request frame goes to the daemon, and what it
/// answers is written back.
///
/// Two ways to answer:
/// - at once, on the connection's event loop: any number of frames, in
///   order (none for a wake-up; several for a listing), or nil to close the
///   connection (a request that makes no sense, or a one-shot exchange);
/// - later: the request is handed to the daemon on its own event loop, where
///   its state lives, and the reply is written when its future succeeds. A
///   failed future closes the connection, so the client learns at once
///   rather than at its timeout.
///
/// A connection that errors is closed.
public final class IPCRequestHandler: ChannelInboundHandler {
    public typealias InboundIn = IPCFrame
    public typealias OutboundOut = IPCFrame

    enum Responder {
        case immediate(@Sendable (IPCFrame) -> [IPCFrame]?)
        case deferred(EventLoop, @Sendable (IPCFrame) -> EventLoopFuture<IPCFrame>)
    }

    let responder: Responder

    /// Answers each request at once: the frames to write, nil to close.
    public init(respond: @escaping @Sendable (IPCFrame) -> [IPCFrame]?) {
        responder = .immediate(respond)
    }

    /// Answers each request on `eventLoop` with one frame, when ready.
    public init(on eventLoop: EventLoop, respond: @escaping @Sendable (IPCFrame) -> EventLoopFuture<IPCFrame>) {
        responder = .deferred(eventLoop, respond)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let request = unwrapInboundIn(data)
        switch responder {
        case .immediate(let respond):
            guard let replies = respond(request) else {
                context.close(promise: nil)
                return
            }
            guard !replies.isEmpty else { return }
            for reply in replies { context.write(wrapOutboundOut(reply), promise: nil) }
            context.flush()
        case .deferred(let eventLoop, let respond):
            let channel = context.channel
            eventLoop.execute {
                respond(request).whenComplete { result in
                    switch result {
                    case .success(let reply): channel.writeAndFlush(reply, promise: nil)
                    case .failure: channel.close(promise: nil)
                    }
                }
            }
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
