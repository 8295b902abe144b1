#if canImport(Glibc)
import Glibc
#endif
import Logging
import MailCore
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SMTPProtocol

/// Settings every connection shares, from the configuration.
struct SMTPClientSettings: Sendable {
    var heloName: String
    var tlsPolicy: SMTPClientSession.TLSPolicy
    var connectTimeout: TimeAmount
    var heloTimeout: TimeAmount
    var mailTimeout: TimeAmount
    var rcptTimeout: TimeAmount
    var dataInitTimeout: TimeAmount
    var dataTransferTimeout: TimeAmount
    var dataDoneTimeout: TimeAmount
    var quitTimeout: TimeAmount
}

/// Why a connection could not be used for mail.
struct ConnectionFailure: Error, Sendable {
    var text: String
    /// The status a deferral for this reason carries (always transient: the
    /// next server, or the next try, may do better).
    var status: EnhancedStatusCode
    /// STARTTLS failed under `may`: the same host in plain text may work.
    var retryWithoutTLS = false

    init(text: String, status: EnhancedStatusCode = EnhancedStatusCode(4, 4, 1), retryWithoutTLS: Bool = false) {
        self.text = text
        self.status = status
        self.retryWithoutTLS = retryWithoutTLS
    }
}

/// One SMTP connection to one server address, driving an
/// ``SMTPClientSession`` over a NIO channel. Confined to its event loop.
final class SMTPClientConnection: @unchecked Sendable {
    let channel: Channel
    let eventLoop: EventLoop
    let settings: SMTPClientSettings
    let logger: Logger
    /// `mx.example.org`, and `mx.example.org[192.0.2.1]:25`.
    let hostName: String
    let peer: String
    let createdAt: NIODeadline
    let tlsContext: NIOSSLContext?
    let trust: TrustRecorder
    var session: SMTPClientSession
    var readyPromise: EventLoopPromise<Void>?
    var transactionPromise: EventLoopPromise<[SMTPClientSession.RecipientResult]>?
    var content: [UInt8] = []
    var timeout: Scheduled<Void>?
    var closed = false
    var idle = false
    /// Called once the session is idle again after a transaction.
    var onIdle: (() -> Void)?

    init(channel: Channel, settings: SMTPClientSettings, tlsPolicy: SMTPClientSession.TLSPolicy, hostName: String,
         peer: String, tlsContext: NIOSSLContext?, logger: Logger) {
        self.channel = channel
        self.eventLoop = channel.eventLoop
        self.settings = settings
        self.hostName = hostName
        self.peer = peer
        self.tlsContext = tlsContext
        self.logger = logger
        self.trust = TrustRecorder()
        createdAt = .now()
        session = SMTPClientSession(settings: .init(heloName: settings.heloName,
                                                    tlsPolicy: tlsContext == nil && tlsPolicy == .may ? .none : tlsPolicy,
                                                    peer: peer))
    }

    /// Connects and waits until the session is ready for mail (greeting,
    /// EHLO, STARTTLS and EHLO again).
    static func open(address: SocketAddress, hostName: String, settings: SMTPClientSettings,
                     tlsPolicy: SMTPClientSession.TLSPolicy, tlsContext: NIOSSLContext?, on eventLoop: EventLoop,
                     logger: Logger) -> EventLoopFuture<SMTPClientConnection> {
        let peer = "\(hostName)[\(address.ipAddress ?? "?")]:\(address.port ?? 25)"
        let promise = eventLoop.makePromise(of: Void.self)
        let box = ConnectionBox()
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(settings.connectTimeout)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let connection = SMTPClientConnection(channel: channel, settings: settings, tlsPolicy: tlsPolicy,
                                                          hostName: hostName, peer: peer, tlsContext: tlsContext, logger: logger)
                    connection.readyPromise = promise
                    box.connection = connection
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(ReplyLineDecoder()))
                    try channel.pipeline.syncOperations.addHandler(SMTPClientHandler(connection: connection))
                    connection.arm(settings.heloTimeout, "receiving the initial server greeting")
                }
            }
            .connect(to: address)
            .flatMapError { error in
                let timedOut = (error as? ChannelError).map { if case .connectTimeout = $0 { return true } else { return false } } ?? false
                return eventLoop.makeFailedFuture(ConnectionFailure(text: "connect to \(peer): \(Self.describe(error))",
                                                                    status: EnhancedStatusCode(4, 4, timedOut ? 2 : 1)))
            }
            .flatMap { _ in promise.futureResult.map { box.connection! } }
    }

    static func describe(_ error: Error) -> String {
        if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { return "Connection timed out" }
        if let failure = error as? ConnectionFailure { return failure.text }
        return "\(error)"
    }

    // MARK: Driving the session

    func perform(_ actions: [SMTPClientSession.Action]) {
        var finished: [SMTPClientSession.RecipientResult]? = nil
        var refusal: SMTPClientSession.Refusal? = nil
        var becameReady = false
        var shouldClose = false
        var armed = false
        for action in actions {
            switch action {
            case .send(let lines):
                armed = true
                var buffer = channel.allocator.buffer(capacity: 64 * lines.count)
                for line in lines {
                    buffer.writeString(line)
                    buffer.writeStaticString("\r\n")
                }
                channel.writeAndFlush(buffer, promise: nil)
                armForStage()
            case .startTLS:
                armed = true
                startTLS()
            case .sendContent(let downgrade):
                armed = true
                let bytes = OutgoingContent.encode(downgrade ? MIMEDowngrade.sevenBit(content) : content)
                content = []
                var buffer = channel.allocator.buffer(capacity: bytes.count + 3)
                buffer.writeBytes(bytes)
                buffer.writeBytes(OutgoingContent.terminator)
                arm(settings.dataTransferTimeout, "sending message body")
                channel.writeAndFlush(buffer).whenComplete { _ in
                    if !self.closed { self.arm(self.settings.dataDoneTimeout, "sending end of data -- message may be sent more than once") }
                }
            case .ready:
                becameReady = true
            case .finished(let results):
                finished = results
            case .refused(let reason):
                refusal = reason
            case .close:
                shouldClose = true
            }
        }
        if becameReady { disarm() }
        // Pipelined replies: each one restarts the clock of the next stage
        // (smtp_rcpt_timeout for the RCPT replies, smtp_data_init_timeout for
        // DATA's), not only the commands' write.
        if !armed && !becameReady && !shouldClose && !closed && session.stage != "idle" { armForStage() }
        if let finished, let promise = transactionPromise {
            transactionPromise = nil
            promise.succeed(finished)
        }
        if let refusal, let promise = readyPromise {
            readyPromise = nil
            promise.fail(failure(for: refusal))
        }
        // Closing last: a close reports the lost connection at once, and
        // the results above must come first.
        if shouldClose { close() }
        if becameReady {
            idle = true
            if let promise = readyPromise {
                readyPromise = nil
                promise.succeed(())
            } else if let onIdle {
                self.onIdle = nil
                onIdle()
            }
        }
    }

    func failure(for refusal: SMTPClientSession.Refusal) -> ConnectionFailure {
        switch refusal {
        case .reply(let reply, let command):
            // A refusal of the session is this server's problem, not the
            // message's: deferred, so the next server or try may take it.
            let status = EnhancedStatusCode(4, reply.enhanced?.subject ?? 0, reply.enhanced?.detail ?? 0)
            if command == "initial greeting" {
                return ConnectionFailure(text: "host \(peer) refused to talk to me: \(reply)", status: status)
            }
            return ConnectionFailure(text: "host \(peer) said: \(reply) (in reply to \(command) command)", status: status)
        case .tlsRequired:
            return ConnectionFailure(text: "TLS is required, but was not offered by host \(peer)", status: EnhancedStatusCode(4, 7, 4))
        case .tlsFailed(let reason):
            return ConnectionFailure(text: "Cannot start TLS: handshake with \(peer) failed: \(reason)",
                                     status: EnhancedStatusCode(4, 7, 5), retryWithoutTLS: session.settings.tlsPolicy == .may)
        case .protocolError(let text):
            return ConnectionFailure(text: text, status: EnhancedStatusCode(4, 5, 0))
        }
    }

    func received(_ line: String, reader: inout SMTPReplyReader) {
        do {
            guard let reply = try reader.feed(line: line) else { return }
            perform(session.received(reply))
        } catch {
            lost("protocol error from \(peer): malformed reply")
        }
    }

    /// Runs one transaction on an idle connection.
    func deliver(_ transaction: SMTPClientSession.Transaction, content: [UInt8]) -> EventLoopFuture<[SMTPClientSession.RecipientResult]> {
        precondition(idle && !closed)
        idle = false
        var transaction = transaction
        self.content = content
        if transaction.eightBit && !session.extensions.eightBitMIME {
            // Converted before MAIL FROM, so that SIZE= announces what is sent.
            self.content = MIMEDowngrade.sevenBit(content)
            transaction.eightBit = false
            transaction.size = self.content.count + self.content.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
        }
        let promise = eventLoop.makePromise(of: [SMTPClientSession.RecipientResult].self)
        transactionPromise = promise
        perform(session.begin(transaction))
        return promise.futureResult
    }

    /// Ends the session with QUIT (or just closes a broken one).
    func quit() {
        guard !closed else { return }
        if idle {
            idle = false
            perform(session.quit())
            arm(settings.quitTimeout, "sending QUIT")
        } else {
            close()
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        idle = false
        disarm()
        channel.close(promise: nil)
    }

    // MARK: TLS

    func startTLS() {
        guard let tlsContext else {
            perform(session.tlsFailed("no TLS context"))
            return
        }
        arm(settings.heloTimeout, "performing the TLS handshake")
        do {
            let handler = try TrustRecorder.makeHandler(context: tlsContext, serverHostname: hostName, recorder: trust)
            try channel.pipeline.syncOperations.addHandler(handler, position: .first)
        } catch {
            perform(session.tlsFailed("\(error)"))
        }
    }

    func tlsCompleted() {
        let version: String
        switch (try? channel.pipeline.syncOperations.nioSSL_tlsVersion()) ?? nil {
        case .tlsv13: version = "TLSv1.3"
        case .tlsv12: version = "TLSv1.2"
        case .tlsv11: version = "TLSv1.1"
        case .tlsv1: version = "TLSv1"
        case nil: version = "TLS"
        }
        logger.info("\(trust.verified ? "Trusted" : "Untrusted") TLS connection established to \(peer): \(version)\(trust.verified ? "" : " (\(trust.problem))")")
        perform(session.tlsEstablished())
    }

    func tlsFailed(_ error: Error) {
        logger.warning("TLS handshake with \(peer) failed: \(error)")
        perform(session.tlsFailed("\(error)"))
    }

    // MARK: Timeouts and a lost connection

    func armForStage() {
        let stage = session.stage
        let limit: TimeAmount
        switch stage {
        case "MAIL FROM": limit = settings.mailTimeout
        case "RCPT TO": limit = settings.rcptTimeout
        case "DATA": limit = settings.dataInitTimeout
        case "end of DATA": limit = settings.dataDoneTimeout
        case "RSET", "QUIT": limit = settings.quitTimeout
        default: limit = settings.heloTimeout
        }
        arm(limit, "sending \(stage)")
    }

    func arm(_ limit: TimeAmount, _ doing: String) {
        timeout?.cancel()
        timeout = eventLoop.scheduleTask(in: limit) {
            self.lost("conversation with \(self.peer) timed out while \(doing)")
        }
    }

    func disarm() {
        timeout?.cancel()
        timeout = nil
    }

    /// The connection broke, timed out or spoke nonsense: whatever was
    /// waiting gets a deferral.
    func lost(_ reason: String) {
        let wasOpen = !closed
        close()
        if let promise = transactionPromise {
            transactionPromise = nil
            let text = session.contentSent && !reason.contains("more than once") ? reason + " -- message may be sent more than once" : reason
            promise.succeed(session.abandon(reason: text))
        }
        if let promise = readyPromise {
            readyPromise = nil
            promise.fail(ConnectionFailure(text: reason, status: EnhancedStatusCode(4, 4, 2)))
        }
        _ = wasOpen
    }

    func channelInactive() {
        guard !closed || transactionPromise != nil || readyPromise != nil else { return }
        let stage = session.stage
        lost(stage == "idle" ? "lost connection with \(peer)" : "lost connection with \(peer) while \(stage == "initial greeting" ? "receiving the initial server greeting" : "sending \(stage)")")
    }
}

/// Holds the connection the channel initializer creates.
final class ConnectionBox: @unchecked Sendable {
    var connection: SMTPClientConnection?
}

/// Splits the server's bytes into lines; a line longer than any server
/// would send ends the session.
struct ReplyLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String
    static let maximumLength = 4096

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: 0x0A) else {
            if view.count > Self.maximumLength { throw ReplyTooLong() }
            return .needMoreData
        }
        let length = newline - view.startIndex
        guard length <= Self.maximumLength else { throw ReplyTooLong() }
        var line = buffer.readSlice(length: length + 1)!
        var bytes = line.readBytes(length: length)!
        if bytes.last == 0x0D { bytes.removeLast() }
        context.fireChannelRead(wrapInboundOut(String(decoding: bytes, as: UTF8.self)))
        return .continue
    }

    struct ReplyTooLong: Error {}
}

final class SMTPClientHandler: ChannelInboundHandler {
    typealias InboundIn = String
    let connection: SMTPClientConnection
    var reader = SMTPReplyReader()

    init(connection: SMTPClientConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.received(unwrapInboundIn(data), reader: &reader)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            connection.tlsCompleted()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.channelInactive()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if connection.session.stage == "TLS handshake" {
            connection.tlsFailed(error)
            return
        }
        if error is ReplyLineDecoder.ReplyTooLong {
            connection.lost("protocol error from \(connection.peer): reply line too long")
            return
        }
        connection.lost("lost connection with \(connection.peer) while sending \(connection.session.stage): \(SMTPClientConnection.describe(error))")
    }
}
