#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOPosix
import SMTPProtocol

/// Asks Dovecot's authentication service (its `auth` Unix socket, placed
/// in the spool so that the chrooted smtpd reaches it) whether a user's
/// credentials are right: one connection per attempt, the handshake, one
/// PLAIN request, `OK` or `FAIL`. Whatever goes wrong on the way (no
/// socket, a timeout, a reply that is not the protocol) is `unavailable`,
/// which the client sees as a temporary failure, never as success.
enum DovecotAuthClient {
    static func authenticate(path: String, credentials: SASLCredentials, clientAddress: String, localAddress: String,
                             secured: Bool, on eventLoop: EventLoop,
                             timeout: TimeAmount) -> EventLoopFuture<SMTPServerStateMachine.AuthenticationResult> {
        let promise = eventLoop.makePromise(of: SMTPServerStateMachine.AuthenticationResult.self)
        let request = DovecotAuth.request(id: 1, credentials: credentials, clientAddress: clientAddress,
                                          localAddress: localAddress, secured: secured)
        let handler = DovecotAuthHandler(request: request, user: credentials.user, promise: promise)
        ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(AuthLineDecoder()))
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(unixDomainSocketPath: path)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    let deadline = eventLoop.scheduleTask(in: timeout) {
                        promise.fail(AuthError("no answer from the authentication service"))
                        channel.close(promise: nil)
                    }
                    promise.futureResult.whenComplete { _ in
                        deadline.cancel()
                        channel.close(promise: nil)
                    }
                case .failure(let error):
                    promise.fail(AuthError("cannot connect to \(path): \(error)"))
                }
            }
        return promise.futureResult.flatMapErrorThrowing { error in
            .unavailable("\(error)")
        }
    }

    struct AuthError: Error, CustomStringConvertible {
        let description: String
        init(_ text: String) { description = text }
    }
}

/// Lines of at most 16 KiB from the authentication service.
struct AuthLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: 10) else {
            if buffer.readableBytes > 16384 { throw DovecotAuthClient.AuthError("reply line too long") }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        let line = buffer.readString(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }
}

final class DovecotAuthHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = String
    typealias OutboundOut = ByteBuffer
    let request: String
    /// The name the client gave, for an OK that names no user.
    let user: String
    let promise: EventLoopPromise<SMTPServerStateMachine.AuthenticationResult>
    var sentRequest = false

    init(request: String, user: String, promise: EventLoopPromise<SMTPServerStateMachine.AuthenticationResult>) {
        self.request = request
        self.user = user
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        send(context, DovecotAuth.hello(pid: Int(getpid())))
        context.fireChannelActive()
    }

    func send(_ context: ChannelHandlerContext, _ text: String) {
        var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
        buffer.writeString(text)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        switch DovecotAuth.parse(line) {
        case .handshake:
            break
        case .handshakeDone:
            guard !sentRequest else { return }
            sentRequest = true
            send(context, request)
        case .ok(1, let named):
            promise.succeed(.success(named.isEmpty ? user : named))
        case .fail(1, let reason, let temporary):
            promise.succeed(temporary ? .unavailable(reason) : .failure(reason))
        case .incompatible(let text):
            promise.fail(DovecotAuthClient.AuthError("incompatible authentication service: \(text)"))
        case .cont, .ok, .fail, nil:
            promise.fail(DovecotAuthClient.AuthError("unexpected reply from the authentication service"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(DovecotAuthClient.AuthError("the authentication service closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
