#if canImport(Glibc)
import Glibc
#endif
import DaemonSkeleton
import DNSResolver
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import Logging
import MailCore
import NIOCore
import NIOPosix
import NIOSSL
import SMTPProtocol

/// One server a destination resolved to: its name and addresses, in the
/// order to try them.
struct RouteHost: Sendable, Equatable {
    var name: String
    var addresses: [String]
}

/// What a destination resolved to.
enum RouteLookup: Sendable, Equatable {
    case hosts([RouteHost])
    case failed(DeliveryOutcome)
}

/// Resolves a route's host field; blocking, run on the thread pool.
typealias RouteResolver = @Sendable (Nexthop) -> RouteLookup

/// smtp-client - delivers mail to other hosts over SMTP
///
/// Description: takes one request at a time per qmgr connection
/// (private/smtp): a message, a destination and its recipients. It finds
/// the destination's servers (MX hosts, or the host a route names), tries
/// them in order until one takes a session, sends the message with as many
/// recipients per transaction as qmgr gave it, and answers with every
/// recipient's outcome: delivered, deferred (4xx, no server reachable) or
/// bounced (5xx). Sessions stay open for `smtp_connection_cache_time_limit`
/// so that the next message to the same destination reuses them.
///
/// Security: runs as `mail_owner`, chrooted to the spool; everything from
/// outside (the resolver's configuration, certificate authorities) is read
/// before the chroot. Servers are untrusted: replies are bounded and checked.
///
/// Configuration: `smtp_*` keys, `smart_host` (routing), `dns_resolver`.
///
/// See also: qmgr(8), smtpd(8), hikyaku.conf(5).
public final class SMTPClientDaemon: @unchecked Sendable {
    // Everything mutable is confined to `eventLoop`.
    let context: DaemonContext
    let logger: Logger
    let eventLoop: EventLoop
    let pool: NIOThreadPool
    let settings: SMTPClientSettings
    let tlsContext: NIOSSLContext?
    let resolve: RouteResolver
    let tlsPolicies: TLSPolicyMap
    let addressLimit: Int
    let cacheTime: TimeAmount
    let reuseTime: TimeAmount
    var cache: [String: [SMTPClientConnection]] = [:]
    var inFlight = 0
    var draining = false

    init(context: DaemonContext, eventLoop: EventLoop, pool: NIOThreadPool, tlsContext: NIOSSLContext?,
         resolve: @escaping RouteResolver, tlsPolicies: TLSPolicyMap = TLSPolicyMap()) throws {
        self.tlsPolicies = tlsPolicies
        self.context = context
        logger = context.logger
        self.eventLoop = eventLoop
        self.pool = pool
        self.tlsContext = tlsContext
        self.resolve = resolve
        settings = try Self.settings(context.configuration)
        let config = context.configuration
        addressLimit = max(1, config.integer("smtp_mx_address_limit"))
        cacheTime = .seconds(Int64(config.seconds("smtp_connection_cache_time_limit")))
        reuseTime = .seconds(Int64(config.seconds("smtp_connection_reuse_time_limit")))
    }

    static func settings(_ config: Configuration) throws -> SMTPClientSettings {
        let level = config.string("smtp_tls_security_level")
        guard let policy = SMTPClientSession.TLSPolicy(rawValue: level) else {
            throw ConfigError(file: config.path, line: config.line(of: "smtp_tls_security_level"), key: "smtp_tls_security_level",
                              reason: "expected none, may or encrypt, found '\(level)'")
        }
        func t(_ key: String) -> TimeAmount { .seconds(Int64(max(1, config.seconds(key)))) }
        return SMTPClientSettings(
            heloName: config.string("smtp_helo_name"), tlsPolicy: policy,
            connectTimeout: t("smtp_connect_timeout"), heloTimeout: t("smtp_helo_timeout"),
            mailTimeout: t("smtp_mail_timeout"), rcptTimeout: t("smtp_rcpt_timeout"),
            dataInitTimeout: t("smtp_data_init_timeout"), dataTransferTimeout: t("smtp_data_xfer_timeout"),
            dataDoneTimeout: t("smtp_data_done_timeout"), quitTimeout: t("smtp_quit_timeout"))
    }

    struct Prepared: Sendable {
        var tlsContext: NIOSSLContext?
        var resolve: RouteResolver
        var tlsPolicies: TLSPolicyMap
    }

    public static func main() -> Never {
        DaemonSkeleton.main(program: "smtp-client", privilege: .mailOwner(chroot: true)) { context -> Prepared in
            // Certificate authorities and the resolver's configuration are
            // outside the chroot: read them now.
            let config = context.configuration
            _ = try Nexthop.smartHost(config)
            let mapPath = config.string("smtp_tls_policy_map")
            let policies = mapPath.isEmpty ? TLSPolicyMap() : try TLSPolicyMap(path: mapPath)
            var tls: NIOSSLContext? = nil
            if config.string("smtp_tls_security_level") != "none" || policies.entries.values.contains(where: { $0 != .none }) {
                let caFile = config.string("smtp_tls_CAfile")
                let (made, count) = try TLSClient.makeContext(caFile: caFile)
                if count == 0 { context.logger.warning("\(caFile): no certificate authorities; every TLS peer will be Untrusted") }
                tls = made
            }
            return Prepared(tlsContext: tls, resolve: try RouteResolution.makeResolver(config), tlsPolicies: policies)
        } serve: { context, prepared in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let pool = NIOThreadPool(numberOfThreads: 4)
            pool.start()
            let daemon = try SMTPClientDaemon(context: context, eventLoop: group.next(), pool: pool,
                                              tlsContext: prepared.tlsContext, resolve: prepared.resolve,
                                              tlsPolicies: prepared.tlsPolicies)
            try daemon.serve(group: group)
        }
    }

    func serve(group: EventLoopGroup) throws {
        let server = try IPCServer.serve(listenFD: context.listenFD(), group: group) {
            IPCRequestHandler(on: self.eventLoop) { self.handle($0) }
        }
        try MasterControl.watch(context, on: eventLoop) {
            self.draining = true
            server.close(promise: nil)
            self.closeCache()
            self.exitIfDrained()
        }
        while true { sleep(3600) }
    }

    func exitIfDrained() {
        if draining && inFlight == 0 { exit(0) }
    }

    func closeCache() {
        for connections in cache.values { for c in connections { c.quit() } }
        cache.removeAll()
    }

    // MARK: One request

    func handle(_ frame: IPCFrame) -> EventLoopFuture<IPCFrame> {
        let request: SMTPDeliveryProtocol.Request
        do {
            request = try SMTPDeliveryProtocol.Request(frame: frame)
        } catch {
            logger.warning("bad request from qmgr: \(error)")
            var reply = IPCFrame(.error)
            reply.add(.text, "bad request: \(error)")
            return eventLoop.makeSucceededFuture(reply)
        }
        inFlight += 1
        let attempt = DeliveryAttempt(daemon: self, request: request)
        return attempt.run().map { result in
            attempt.hold = nil
            self.inFlight -= 1
            self.exitIfDrained()
            return result.frame
        }
    }

    // MARK: The connection cache

    func cacheKey(_ request: SMTPDeliveryProtocol.Request) -> String {
        request.mailer.lowercased() + ":" + request.nexthop.lowercased()
    }

    /// An idle, still usable connection to the destination, if one is cached.
    func takeCached(_ key: String) -> SMTPClientConnection? {
        guard var list = cache[key] else { return nil }
        defer { cache[key] = list.isEmpty ? nil : list }
        while let connection = list.popLast() {
            if !connection.closed && connection.idle { return connection }
        }
        return nil
    }

    /// Keeps a connection for the next message to the same destination, or
    /// ends it when it is old or the daemon is going away.
    func release(_ connection: SMTPClientConnection, key: String) {
        guard !connection.closed else { return }
        guard connection.idle else {
            connection.onIdle = { self.release(connection, key: key) }
            return
        }
        if draining || NIODeadline.now() - connection.createdAt > reuseTime || cacheTime == .zero {
            connection.quit()
            return
        }
        cache[key, default: []].append(connection)
        eventLoop.scheduleTask(in: cacheTime) {
            guard var list = self.cache[key], let index = list.firstIndex(where: { $0 === connection }) else { return }
            list.remove(at: index)
            self.cache[key] = list.isEmpty ? nil : list
            connection.quit()
        }
    }
}
