#if canImport(Glibc)
import Glibc
#endif
import DaemonSkeleton
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import Logging
import MailCore
import NIOCore
import NIOPosix

/// cleanup - canonicalize and enqueue mail
///
/// Description: receives a message from smtpd (or pickup) over
/// `private/cleanup`: the envelope, then the content in pieces. It adds a
/// missing `Message-ID` and `Date` (and `From` for local submissions), writes
/// the queue file in tmp/, and commits it: fsync the file, rename it into
/// incoming/, fsync incoming/ (group commit across concurrent messages).
/// Only after that does it answer "ok"; then it tells qmgr the queue ID.
///
/// Security: runs as `mail_owner`, chrooted to the spool. It trusts nothing in
/// the content; envelope fields come from smtpd, which has validated them.
///
/// Standards: RFC 5322 (header fields).
///
/// Configuration: `myhostname`, `message_size_limit`, `queue_directory`.
///
/// See also: smtpd(8), qmgr(8), docs/INTERNALS.md.
public final class CleanupDaemon: @unchecked Sendable {
    // Mutable state is confined to the single event loop.
    let context: DaemonContext
    let logger: Logger
    let hostname: String
    let sizeLimit: Int
    let committer: QueueCommitter
    let eventLoop: EventLoop
    var sequence = 0
    var draining = false
    var connections = 0
    var serverChannel: Channel? = nil
    var qmgr: IPCClient? = nil
    var qmgrConnecting = false
    var pendingNotifications: [QueueID] = []
    /// domaintable, as aliasd last said it (asked again every 5 seconds).
    var rewriter = DomainRewriter(table: [:])
    var aliasd: LazyIPCClient? = nil

    init(context: DaemonContext, eventLoop: EventLoop) {
        self.context = context
        logger = context.logger
        hostname = context.configuration.string("myhostname")
        // Headroom for added headers and the envelope beyond the SMTP limit.
        let limit = context.configuration.size("message_size_limit")
        sizeLimit = limit == 0 ? Int.max : limit + 64 * 1024
        committer = QueueCommitter(directory: context.spool.directory(.incoming))
        self.eventLoop = eventLoop
    }

    public static func main() -> Never {
        DaemonSkeleton.main(program: "cleanup", privilege: .mailOwner(chroot: true)) { _ in () } serve: { context, _ in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let daemon = CleanupDaemon(context: context, eventLoop: group.next())
            try daemon.serve(group: group)
        }
    }

    func serve(group: EventLoopGroup) throws {
        removeStaleTemporaryFiles()
        let listenFD = context.listenFD()
        let server = try IPCServer.serve(listenFD: listenFD, group: group) {
            CleanupConnectionHandler(daemon: self)
        }
        serverChannel = server
        aliasd = LazyIPCClient(path: context.spool.socket(.aliasd), eventLoop: eventLoop, timeout: .seconds(10))
        eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(5)) { _ in self.refreshDomainTable() }
        try MasterControl.watch(context, on: eventLoop) { self.startDrain() }
        try server.closeFuture.wait()
        // Drain: wait for connections to finish their transactions.
        while try eventLoop.submit({ self.connections }).wait() > 0 {
            usleep(50_000)
        }
    }

    func startDrain() {
        guard !draining else { return }
        draining = true
        serverChannel?.close(promise: nil)
    }

    /// Temporary files of a cleanup that died mid-message are garbage; their
    /// writer's pid is in the name. Live writers' files are left alone.
    func removeStaleTemporaryFiles() {
        let directory = context.spool.directory(.tmp)
        guard let names = try? FileIO.listDirectory(directory) else { return }
        for name in names {
            guard let pidText = name.split(separator: ".").first, let pid = Int32(pidText) else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                _ = unlink(directory + "/" + name)
            }
        }
    }

    func refreshDomainTable() {
        aliasd?.request(IPCFrame(.aliasDomainTable)).whenSuccess { frame in
            if let table = try? AliasProtocol.domainTable(from: frame) {
                self.eventLoop.execute { self.rewriter = DomainRewriter(table: table) }
            }
        }
    }

    func nextTemporaryName() -> String {
        sequence += 1
        return "\(getpid()).\(sequence)"
    }

    // MARK: qmgr notification

    func notifyQueueManager(_ id: QueueID) {
        pendingNotifications.append(id)
        flushNotifications()
    }

    func flushNotifications() {
        if let qmgr, qmgr.isActive {
            for id in pendingNotifications {
                var frame = IPCFrame(.qmgrQueued)
                frame.add(.queueID, id.rawValue)
                _ = qmgr.send(frame)
            }
            pendingNotifications.removeAll()
            return
        }
        guard !qmgrConnecting else { return }
        qmgrConnecting = true
        IPCClient.connect(path: context.spool.socket(.qmgr), on: eventLoop).whenComplete { result in
            self.qmgrConnecting = false
            switch result {
            case .success(let client):
                self.qmgr = client
                self.flushNotifications()
            case .failure:
                // qmgr is restarting; it scans incoming/ when it starts, so
                // nothing is lost by dropping the wake-up.
                self.pendingNotifications.removeAll()
            }
        }
    }
}

/// One client connection: a sequence of transactions.
final class CleanupConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = IPCFrame
    typealias OutboundOut = IPCFrame

    let daemon: CleanupDaemon
    var transaction: CleanupTransaction? = nil
    var committing = false

    init(daemon: CleanupDaemon) {
        self.daemon = daemon
    }

    func channelActive(context: ChannelHandlerContext) {
        daemon.connections += 1
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        daemon.connections -= 1
        if let transaction, !committing {
            transaction.discard()
            self.transaction = nil
        }
        context.fireChannelInactive()
    }

    func reply(_ context: ChannelHandlerContext, _ reply: CleanupProtocol.Reply) {
        context.writeAndFlush(wrapOutboundOut(reply.frame), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.type {
        case .cleanupBegin:
            guard transaction == nil, !committing else { return protocolError(context, "begin inside a transaction") }
            let begin: CleanupProtocol.Begin
            do {
                begin = try CleanupProtocol.Begin(frame: frame)
            } catch {
                return protocolError(context, "\(error)")
            }
            guard !begin.recipients.isEmpty else { return protocolError(context, "begin without recipients") }
            do {
                let t = try CleanupTransaction(begin: begin, spool: daemon.context.spool,
                                               temporaryName: daemon.nextTemporaryName(),
                                               hostname: daemon.hostname, sizeLimit: daemon.sizeLimit,
                                               rewriter: daemon.rewriter)
                transaction = t
                reply(context, .ok(t.queueID))
            } catch {
                daemon.logger.warning("cannot create a queue file: \(error)")
                let smtp = error.isNoSpace
                    ? SMTPReply(452, EnhancedStatusCode(4, 3, 1), "Insufficient system storage")
                    : SMTPReply(451, EnhancedStatusCode(4, 3, 0), "Error: queue file write error")
                reply(context, .refused(smtp))
            }

        case .cleanupContent:
            guard let transaction, !committing else { return protocolError(context, "content outside a transaction") }
            transaction.append(frame.bytes(.content) ?? [])

        case .cleanupCommit:
            guard let transaction, !committing else { return protocolError(context, "commit outside a transaction") }
            if let refusal = transaction.finish() {
                if refusal.isTransient { daemon.logger.warning("\(transaction.queueID): \(refusal)") }
                transaction.discard()
                self.transaction = nil
                reply(context, .refused(refusal))
                return
            }
            committing = true
            let promise = context.eventLoop.makePromise(of: Void.self)
            daemon.committer.commit(QueueCommitter.Job(fd: transaction.fd, temporaryPath: transaction.temporaryPath,
                                                       finalPath: transaction.finalPath, promise: promise))
            let channel = context.channel
            promise.futureResult.hop(to: context.eventLoop).assumeIsolated().whenComplete { result in
                self.committing = false
                self.transaction = nil
                transaction.closeFile()
                switch result {
                case .success:
                    if let messageID = transaction.repair.messageID {
                        self.daemon.logger.info("\(transaction.queueID): message-id=\(messageID)")
                    }
                    channel.writeAndFlush(CleanupProtocol.Reply.ok(transaction.queueID).frame, promise: nil)
                    self.daemon.notifyQueueManager(transaction.queueID)
                case .failure(let error):
                    self.daemon.logger.warning("\(transaction.queueID): commit failed: \(error)")
                    _ = unlink(transaction.temporaryPath)
                    let noSpace = (error as? SystemError)?.isNoSpace ?? false
                    let smtp = noSpace
                        ? SMTPReply(452, EnhancedStatusCode(4, 3, 1), "Insufficient system storage")
                        : SMTPReply(451, EnhancedStatusCode(4, 3, 0), "Error: queue file write error")
                    channel.writeAndFlush(CleanupProtocol.Reply.refused(smtp).frame, promise: nil)
                }
                if self.daemon.draining { channel.close(promise: nil) }
            }

        case .cleanupAbort:
            if let transaction, !committing {
                transaction.discard()
                self.transaction = nil
            }
            if daemon.draining { context.close(promise: nil) }

        default:
            protocolError(context, "unexpected message type \(frame.type.rawValue)")
        }
    }

    func protocolError(_ context: ChannelHandlerContext, _ what: String) {
        daemon.logger.warning("protocol error from client: \(what)")
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
