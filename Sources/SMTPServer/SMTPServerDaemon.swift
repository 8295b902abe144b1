#if canImport(Glibc)
import Glibc
#endif
import DaemonSkeleton
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SMTPProtocol

/// smtpd - the SMTP server
///
/// Description: accepts SMTP sessions on the sockets the master passes
/// (many sessions per process, on NIO event loops). Recipients are checked
/// with aliasd as they arrive; the message is streamed to cleanup as it
/// arrives, and `250 2.0.0 Ok: queued as ID` is sent only after cleanup has
/// committed the queue file to disk.
///
/// Security: runs as `mail_owner`, chrooted to the spool. Every byte from the
/// network is hostile: line lengths, recipient counts, message size and
/// errors are bounded; bare CR or LF never ends DATA.
///
/// Standards: RFC 5321 (SMTP), RFC 1870 (SIZE), RFC 2920 (PIPELINING),
/// RFC 6152 (8BITMIME), RFC 2034 and RFC 3463 (enhanced status codes).
///
/// Configuration: `smtpd_banner`, `message_size_limit`,
/// `smtpd_recipient_limit`, `smtpd_hard_error_limit`, `smtpd_timeout`,
/// `smtpd_forbid_bare_newline`, `disable_vrfy_command`,
/// `smtpd_client_lookup_timeout`, `myhostname`, `myorigin`.
///
/// See also: cleanup(8), aliasd(8), master(8).
public final class SMTPServerShared: Sendable {
    let settings: SMTPServerStateMachine.Settings
    let hostname: String
    /// Bare local parts (`RCPT TO:<postmaster>`) are completed with this.
    let origin: String
    let logger: Logger
    let idleTimeout: TimeAmount
    let lookupTimeout: TimeAmount
    let bareLineEndingPolicy: DataFramer.BareLineEndingPolicy
    let cleanupPath: String
    let lookupPool: NIOThreadPool
    let aliasClients: [ObjectIdentifier: LazyIPCClient]
    let sessions = NIOLockedValueBox((active: 0, draining: false))

    init(context: DaemonContext, group: MultiThreadedEventLoopGroup) {
        let config = context.configuration
        hostname = config.string("myhostname")
        origin = config.string("myorigin")
        settings = SMTPServerStateMachine.Settings(
            hostname: hostname,
            greeting: config.string("smtpd_banner"),
            messageSizeLimit: config.size("message_size_limit"),
            recipientLimit: max(1, config.integer("smtpd_recipient_limit")),
            hardErrorLimit: max(1, config.integer("smtpd_hard_error_limit")),
            vrfyEnabled: !config.boolean("disable_vrfy_command"),
            checksSender: !config.boolean("smtpd_delay_checks"))
        logger = context.logger
        idleTimeout = .seconds(Int64(max(1, config.seconds("smtpd_timeout"))))
        lookupTimeout = .milliseconds(Int64(max(1, config.seconds("smtpd_client_lookup_timeout")) * 1000))
        let policyName = config.string("smtpd_forbid_bare_newline")
        bareLineEndingPolicy = DataFramer.BareLineEndingPolicy(rawValue: policyName) ?? .reject
        if DataFramer.BareLineEndingPolicy(rawValue: policyName) == nil {
            context.logger.warning("smtpd_forbid_bare_newline = \(policyName): unknown value; using reject")
        }
        cleanupPath = context.spool.socket(.cleanup)
        lookupPool = NIOThreadPool(numberOfThreads: 2)
        lookupPool.start()
        var clients: [ObjectIdentifier: LazyIPCClient] = [:]
        for loop in group.makeIterator() {
            clients[ObjectIdentifier(loop)] = LazyIPCClient(path: context.spool.socket(.aliasd), eventLoop: loop,
                                                            timeout: .seconds(30))
        }
        aliasClients = clients
    }

    func aliasClient(for loop: EventLoop) -> LazyIPCClient {
        aliasClients[ObjectIdentifier(loop)]!
    }

    func sessionStarted() {
        sessions.withLockedValue { $0.active += 1 }
    }

    func sessionEnded() {
        let exitNow = sessions.withLockedValue { state -> Bool in
            state.active -= 1
            return state.draining && state.active == 0
        }
        if exitNow { exit(0) }
    }

    /// Stop accepting; exit when the last session ends.
    func drain(listeners: [Channel]) {
        for listener in listeners { listener.close(promise: nil) }
        let exitNow = sessions.withLockedValue { state -> Bool in
            state.draining = true
            return state.active == 0
        }
        if exitNow { exit(0) }
    }
}

public enum SMTPServerDaemon {
    public static func main() -> Never {
        DaemonSkeleton.main(program: "smtpd", privilege: .mailOwner(chroot: true)) { context in
            // Resolver configuration is read before the chroot hides /etc.
            _ = ClientIdentity.reverse("127.0.0.1")
        } serve: { context, _ in
            try serve(context)
        }
    }

    static func serve(_ context: DaemonContext) throws {
        guard !context.listenFDs.isEmpty else {
            context.logger.critical("smtpd needs listening sockets from the master")
            exit(1)
        }
        let threads = max(1, min(4, System.coreCount))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let shared = SMTPServerShared(context: context, group: group)
        var listeners: [Channel] = []
        for fd in context.listenFDs {
            let channel = try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .childChannelOption(.socketOption(.so_keepalive), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            SMTPSessionHandler(server: shared, remote: channel.remoteAddress))
                    }
                }
                .withBoundSocket(fd)
                .wait()
            listeners.append(channel)
        }
        let listenerList = listeners
        try MasterControl.watch(context, on: group.next()) { shared.drain(listeners: listenerList) }
        for listener in listeners {
            try listener.closeFuture.wait()
        }
        // Draining: sessionEnded() exits when the last session is done.
        while true { sleep(3600) }
    }
}
