#if canImport(Glibc)
import Glibc
#endif
import DaemonSkeleton
import DNSResolver
import HikyakuIPC
import HikyakuSystem
import MailCore
import NIOCore
import NIOPosix
import SMTPProtocol

/// One request from qmgr: find a server that takes a session, run the
/// transaction, and say what became of every recipient.
final class DeliveryAttempt: @unchecked Sendable {
    // Confined to the daemon's event loop.
    let daemon: SMTPClientDaemon
    let request: SMTPDeliveryProtocol.Request
    let receivedAt: Int
    var readyAt: Int = 0
    var content: [UInt8] = []
    var transaction: SMTPClientSession.Transaction! = nil
    var lastFailure: ConnectionFailure? = nil
    /// The queue file, held while delivering; accepted recipients are
    /// marked in it at once (QueueFileHold).
    var hold: QueueFileHold? = nil
    /// smtp_tls_security_level, or the route's entry in smtp_tls_policy_map.
    var tlsPolicy: SMTPClientSession.TLSPolicy { daemon.tlsPolicies.level(for: request.nexthop) ?? daemon.settings.tlsPolicy }

    static let smtpMailers: Set<String> = ["esmtp", "smtp", "smtp8", "dsmtp", "relay"]

    init(daemon: SMTPClientDaemon, request: SMTPDeliveryProtocol.Request) {
        self.daemon = daemon
        self.request = request
        receivedAt = Self.microseconds()
    }

    static func microseconds() -> Int {
        let (seconds, micros) = WallClock.now()
        return seconds * 1_000_000 + micros
    }

    var eventLoop: EventLoop { daemon.eventLoop }

    func run() -> EventLoopFuture<SMTPDeliveryProtocol.Result> {
        guard Self.smtpMailers.contains(request.mailer.lowercased()) else {
            return finish(all: .deferred(EnhancedStatusCode(4, 3, 5), "mail transport unavailable: mailer \(request.mailer) is not an SMTP mailer"))
        }
        let destination: Nexthop
        do {
            destination = try Nexthop(parsing: request.nexthop)
        } catch {
            return finish(all: .deferred(EnhancedStatusCode(4, 3, 5), "bad route: \(error)"))
        }
        do {
            let path = daemon.context.spool.file(.active, request.queueID.rawValue)
            let hold = try QueueFileHold(path: path, contentOffset: request.contentOffset)
            self.hold = hold
            content = try FileIO.pread(hold.fd, count: request.contentLength, at: request.contentOffset, path: path)
        } catch {
            return finish(all: .deferred(EnhancedStatusCode(4, 3, 0), "cannot read the queue file: \(error)"))
        }
        let newlines = content.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
        let addresses = [request.sender] + request.recipients.map(\.address)
        transaction = SMTPClientSession.Transaction(
            sender: request.sender,
            recipients: request.recipients.map {
                .init(address: $0.address, notify: $0.notify.isEmpty ? nil : $0.notify,
                      originalRecipient: $0.originalRecipient.isEmpty ? nil : $0.originalRecipient)
            },
            size: content.count + newlines,
            eightBit: request.bodyType.uppercased() == "8BITMIME" || OutgoingContent.hasEightBit(content),
            smtpUTF8: request.smtpUTF8 || addresses.contains { $0.utf8.contains { $0 >= 0x80 } },
            ret: request.ret.isEmpty ? nil : request.ret, envid: request.envid.isEmpty ? nil : request.envid)

        let key = daemon.cacheKey(request)
        if let cached = daemon.takeCached(key) {
            readyAt = Self.microseconds()
            return use(cached, key: key).flatMap { result in
                // A cached session the server had already dropped: start
                // afresh, nothing was sent.
                if let result { return self.eventLoop.makeSucceededFuture(result) }
                return self.resolveAndConnect(destination, key: key)
            }
        }
        return resolveAndConnect(destination, key: key)
    }

    func resolveAndConnect(_ destination: Nexthop, key: String) -> EventLoopFuture<SMTPDeliveryProtocol.Result> {
        let resolve = daemon.resolve
        return daemon.pool.runIfActive(eventLoop: eventLoop) { resolve(destination) }
            .recover { error in .failed(.deferred(EnhancedStatusCode(4, 4, 3), "name service unavailable: \(error)")) }
            .flatMap { lookup in
                switch lookup {
                case .failed(let outcome):
                    return self.finish(all: outcome, destinationFailed: !outcome.status.isPermanent)
                case .hosts(let hosts):
                    var targets: [(name: String, address: SocketAddress)] = []
                    for host in hosts {
                        for text in host.addresses {
                            guard targets.count < self.daemon.addressLimit,
                                  let address = try? SocketAddress(ipAddress: text, port: destination.port) else { continue }
                            targets.append((host.name, address))
                        }
                    }
                    guard !targets.isEmpty else {
                        return self.finish(all: .deferred(EnhancedStatusCode(4, 4, 4), "no address for any server of \(destination)"),
                                           destinationFailed: true)
                    }
                    return self.tryTarget(targets, 0, tlsPolicy: self.tlsPolicy, key: key)
                }
            }
    }

    func tryTarget(_ targets: [(name: String, address: SocketAddress)], _ index: Int,
                   tlsPolicy: SMTPClientSession.TLSPolicy, key: String) -> EventLoopFuture<SMTPDeliveryProtocol.Result> {
        guard index < targets.count else {
            let failure = lastFailure ?? ConnectionFailure(text: "no server took a session")
            return finish(all: .deferred(failure.status, failure.text), destinationFailed: true)
        }
        let (name, address) = targets[index]
        return SMTPClientConnection.open(address: address, hostName: name, settings: daemon.settings, tlsPolicy: tlsPolicy,
                                         tlsContext: daemon.tlsContext, on: eventLoop, logger: daemon.logger)
            .flatMap { connection in
                self.readyAt = Self.microseconds()
                return self.use(connection, key: key).flatMap { result in
                    if let result { return self.eventLoop.makeSucceededFuture(result) }
                    return self.tryTarget(targets, index + 1, tlsPolicy: self.tlsPolicy, key: key)
                }
            }
            .flatMapError { error in
                let failure = error as? ConnectionFailure ?? ConnectionFailure(text: "\(error)")
                if failure.retryWithoutTLS && tlsPolicy != .none {
                    self.daemon.logger.info("\(self.request.queueID): \(failure.text); trying again without TLS")
                    return self.tryTarget(targets, index, tlsPolicy: .none, key: key)
                }
                self.lastFailure = failure
                if index + 1 < targets.count {
                    self.daemon.logger.info("\(self.request.queueID): \(failure.text)")
                }
                return self.tryTarget(targets, index + 1, tlsPolicy: self.tlsPolicy, key: key)
            }
    }

    /// Runs the transaction on a ready connection. nil when the session
    /// broke before anything was sent, so another server may be tried.
    func use(_ connection: SMTPClientConnection, key: String) -> EventLoopFuture<SMTPDeliveryProtocol.Result?> {
        connection.deliver(transaction, content: content).map { results in
            let untouched = !connection.session.contentSent && !results.isEmpty && results.allSatisfy { $0.connectionLost }
            if untouched, let first = results.first {
                self.lastFailure = ConnectionFailure(text: first.reply.lines.joined(separator: " "), status: EnhancedStatusCode(4, 4, 2))
                return nil
            }
            self.daemon.release(connection, key: key)
            return self.finish(results, connection: connection)
        }
    }

    // MARK: Results

    func finish(_ results: [SMTPClientSession.RecipientResult], connection: SMTPClientConnection) -> SMTPDeliveryProtocol.Result {
        var outcomes: [SMTPDeliveryProtocol.Outcome] = []
        for result in results {
            let recipient = request.recipients[result.index]
            let reply = result.reply
            let status = reply.enhanced ?? EnhancedStatusCode(min(5, max(2, reply.code / 100)), 0, 0)
            let outcome: DeliveryOutcome
            var remote = "", diagnostic = ""
            if result.fromServer {
                remote = connection.hostName
                diagnostic = reply.description
                switch reply.code {
                case 200..<300: outcome = .delivered(status, reply.description)
                case 400..<500: outcome = .deferred(status, "host \(connection.peer) said: \(reply) (in reply to \(result.inReplyTo) command)")
                default: outcome = .bounced(status, "host \(connection.peer) said: \(reply) (in reply to \(result.inReplyTo) command)")
                }
            } else {
                let text = reply.lines.joined(separator: " ")
                outcome = reply.isPermanent ? .bounced(status, text) : .deferred(status, text)
            }
            if case .delivered = outcome {
                do {
                    try hold?.markDelivered(recipient.index)
                } catch {
                    daemon.logger.warning("\(request.queueID): cannot mark the delivery in the queue file: \(error)")
                }
            }
            log(recipient.address, relay: connection.peer, outcome)
            outcomes.append(.init(index: recipient.index, outcome: outcome, remoteMTA: remote, diagnostic: diagnostic))
        }
        return SMTPDeliveryProtocol.Result(outcomes: outcomes, destinationFailed: false, peerDSN: connection.session.extensions.dsn)
    }

    /// Every recipient gets the same outcome (no server, bad route...).
    func finish(all outcome: DeliveryOutcome, destinationFailed: Bool = false) -> EventLoopFuture<SMTPDeliveryProtocol.Result> {
        let outcomes = request.recipients.map { recipient -> SMTPDeliveryProtocol.Outcome in
            log(recipient.address, relay: "none", outcome)
            return .init(index: recipient.index, outcome: outcome)
        }
        return eventLoop.makeSucceededFuture(SMTPDeliveryProtocol.Result(outcomes: outcomes, destinationFailed: destinationFailed))
    }

    /// Postfix's delivery line: delays= is time before the queue manager,
    /// in it, setting up the session (DNS, connect, greeting, TLS), and
    /// sending the message.
    func log(_ address: String, relay: String, _ outcome: DeliveryOutcome) {
        let now = Self.microseconds()
        let ready = readyAt == 0 ? now : readyAt
        func s(_ from: Int, _ to: Int) -> String { DelayFormat.format(Double(max(0, to - from)) / 1e6) }
        let delays = "\(s(request.arrivalMicroseconds, request.activatedAt))/\(s(request.activatedAt, request.dispatchedAt))/\(s(request.dispatchedAt, ready))/\(s(ready, now))"
        daemon.logger.info("\(request.queueID): to=<\(address)>, relay=\(relay), delay=\(s(request.arrivalMicroseconds, now)), delays=\(delays), dsn=\(outcome.status), status=\(outcome.logWord) (\(outcome.text))")
    }
}
