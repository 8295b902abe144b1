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
import NIOSSL
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
    /// The server TLS context (certificate and key read before the chroot);
    /// nil when TLS is off or the files could not be loaded.
    let tlsContext: NIOSSLContext?
    /// Dovecot's authentication socket, as smtpd sees it (in the chroot).
    let saslPath: String
    let authOnPort25: Bool
    let authFailureLimit: Int
    /// Failed AUTH attempts per client address, with their times.
    let authFailures = NIOLockedValueBox([String: [Int]]())
    let limits: ClientLimits
    let dataTimeLimit: TimeAmount
    /// sendmail's greet_pause: how long a client waits for the greeting.
    let greetPause: TimeAmount
    /// TCP wrappers are consulted (through aliasd) at connect.
    let checksHostsAccess: Bool

    init(context: DaemonContext, group: MultiThreadedEventLoopGroup, tlsContext: NIOSSLContext?) {
        let config = context.configuration
        hostname = config.string("myhostname")
        origin = config.string("myorigin")
        self.tlsContext = tlsContext
        var settings = SMTPServerStateMachine.Settings(
            hostname: hostname,
            greeting: config.string("smtpd_banner"),
            messageSizeLimit: config.size("message_size_limit"),
            recipientLimit: max(1, config.integer("smtpd_recipient_limit")),
            hardErrorLimit: max(1, config.integer("smtpd_hard_error_limit")),
            vrfyEnabled: !config.boolean("disable_vrfy_command"),
            checksSender: !config.boolean("smtpd_delay_checks"))
        // Port 25 offers STARTTLS unless the level is none (the certificate
        // may be loaded for the submission ports all the same).
        settings.tlsAvailable = tlsContext != nil && config.string("smtpd_tls_security_level") != "none"
        settings.tlsRequired = config.string("smtpd_tls_security_level") == "encrypt"
        settings.rejectUnauthPipelining = config.boolean("smtpd_reject_unauth_pipelining")
        settings.strictEnvelopes = config.boolean("strict_rfc821_envelopes")
        authOnPort25 = config.boolean("smtpd_sasl_auth_enable")
        settings.authEnabled = authOnPort25 && tlsContext != nil
        self.settings = settings
        let sasl = config.string("smtpd_sasl_path")
        saslPath = sasl.hasPrefix("/") ? sasl : context.spool.join(sasl)
        authFailureLimit = max(1, config.integer("smtpd_client_auth_failure_limit"))
        limits = ClientLimits(limits: .init(
            sessions: max(1, config.integer("smtpd_session_limit")),
            connectionsPerClient: max(1, config.integer("smtpd_client_connection_count_limit")),
            connectionRate: max(0, config.integer("smtpd_client_connection_rate_limit")),
            messageRate: max(0, config.integer("smtpd_client_message_rate_limit")),
            recipientRate: max(0, config.integer("smtpd_client_recipient_rate_limit"))))
        dataTimeLimit = .seconds(Int64(max(1, config.seconds("smtpd_data_time_limit"))))
        greetPause = .seconds(Int64(max(0, config.seconds("smtpd_greet_pause"))))
        checksHostsAccess = !config.string("smtpd_hosts_allow_file").isEmpty || !config.string("smtpd_hosts_deny_file").isEmpty
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

    /// The session settings for a listener's role: submission requires TLS
    /// before MAIL whatever smtpd_tls_security_level says.
    func settings(for role: String) -> SMTPServerStateMachine.Settings {
        var settings = self.settings
        if role == "submission" || role == "smtps" {
            // RFC 6409: submission is for authenticated users, over TLS.
            settings.tlsAvailable = tlsContext != nil
            settings.tlsRequired = true
            settings.authEnabled = tlsContext != nil
            settings.authRequired = true
        }
        return settings
    }

    static let authFailureWindow = 600

    /// Too many failed AUTH attempts from this address lately.
    func authFailuresExceeded(_ address: String) -> Bool {
        let now = WallClock.seconds()
        return authFailures.withLockedValue { table in
            let recent = (table[address] ?? []).filter { now - $0 < Self.authFailureWindow }
            table[address] = recent.isEmpty ? nil : recent
            return recent.count >= authFailureLimit
        }
    }

    func noteAuthFailure(_ address: String) {
        let now = WallClock.seconds()
        authFailures.withLockedValue { table in
            var recent = (table[address] ?? []).filter { now - $0 < Self.authFailureWindow }
            recent.append(now)
            table[address] = recent
            // A client spraying addresses cannot grow the table without end.
            if table.count > 10_000 { table = table.filter { $0.value.contains { now - $0 < 60 } } }
        }
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
        DaemonSkeleton.main(program: "smtpd", privilege: .mailOwner(chroot: true)) { context -> NIOSSLContext? in
            // Resolver configuration is read before the chroot hides /etc,
            // and so are the certificate and its key (readable by root only).
            _ = ClientIdentity.reverse("127.0.0.1")
            return loadTLS(context)
        } serve: { context, tls in
            try serve(context, tls: tls)
        }
    }

    /// The TLS context from smtpd_tls_cert_file and smtpd_tls_key_file: TLS
    /// 1.2 or later. Without usable files STARTTLS is not offered (logged),
    /// and an implicit-TLS listener cannot serve.
    static func loadTLS(_ context: DaemonContext) -> NIOSSLContext? {
        let config = context.configuration
        let roles = context.listenRoles
        guard config.string("smtpd_tls_security_level") != "none" || roles.contains("submission") || roles.contains("smtps") else {
            return nil
        }
        let certFile = config.string("smtpd_tls_cert_file"), keyFile = config.string("smtpd_tls_key_file")
        do {
            let chain = try NIOSSLCertificate.fromPEMFile(certFile)
            guard !chain.isEmpty else { throw ConfigError(file: certFile, line: 0, key: "smtpd_tls_cert_file", reason: "no certificate in the file") }
            let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            tls.minimumTLSVersion = .tlsv12
            tls.cipherSuiteValues = try TLSCipherList.parse(
                config.string("smtpd_tls_cipherlist"), file: config.path, line: config.line(of: "smtpd_tls_cipherlist")
            ).map { NIOTLSCipher(rawValue: $0) }
            return try NIOSSLContext(configuration: tls)
        } catch {
            context.logger.warning("TLS is not available: cannot load \(certFile) and \(keyFile): \(error)")
            return nil
        }
    }

    static func serve(_ context: DaemonContext, tls: NIOSSLContext?) throws {
        guard !context.listenFDs.isEmpty else {
            context.logger.critical("smtpd needs listening sockets from the master")
            exit(1)
        }
        let threads = max(1, min(4, System.coreCount))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let shared = SMTPServerShared(context: context, group: group, tlsContext: tls)
        var listeners: [Channel] = []
        for (index, fd) in context.listenFDs.enumerated() {
            let role = index < context.listenRoles.count ? context.listenRoles[index] : "smtp"
            if role == "smtps" && tls == nil {
                // Refuse at once rather than leave clients hanging on a bound port.
                context.logger.error("smtps_listen: no TLS certificate; connections to the implicit-TLS port are closed at once")
                listeners.append(try ServerBootstrap(group: group)
                    .childChannelInitializer { channel in channel.close() }
                    .withBoundSocket(fd).wait())
                continue
            }
            let settings = shared.settings(for: role)
            let channel = try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            AcceptBackoffHandler(shouldForwardIOErrorCaught: true,
                                                 backoffProvider: DescriptorExhaustionHandler.backoff))
                        try channel.pipeline.syncOperations.addHandler(
                            DescriptorExhaustionHandler(listenFD: fd, hostname: shared.hostname, logger: shared.logger))
                    }
                }
                .childChannelOption(.socketOption(.so_keepalive), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if role == "smtps", let tls {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            SMTPSessionHandler(server: shared, remote: channel.remoteAddress, settings: settings,
                                               implicitTLS: role == "smtps"))
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
