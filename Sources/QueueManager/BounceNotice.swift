#if canImport(Glibc)
import Glibc
#endif
import DaemonSkeleton
import HikyakuIPC
import HikyakuSystem
import MailCore
import NIOCore
import QueueFormat

/// Queues delivery status notifications (RFC 3464) about a message in
/// active/: failure reports, delay warnings and success reports, through
/// cleanup like any other mail, with the null sender.
///
/// A report goes to the envelope sender and lists the recipients of one
/// event whose NOTIFY asks for it (``DeliveryReport``). Mail with the null
/// sender is not returned (RFC 5321 section 4.5.5); a failure of it is
/// reported to the postmaster instead, and a failed report to the postmaster
/// is dropped, so no loop can form.
enum BounceNotice {
    /// The failure report for the recipients bounced in this pass
    /// (`active.bounced`). The new message's queue ID, or nil when no report
    /// is due (NOTIFY, or an undeliverable postmaster notification).
    static func send(for active: ActiveMessage, manager: QueueManager) -> EventLoopFuture<QueueID?> {
        let now = WallClock.seconds()
        let events = active.bounced.map { active.event($0.key, $0.value, time: now) }
        return send(.failure, events: events, for: active, manager: manager)
    }

    /// Queues the report of one event: `events` says, per recipient index,
    /// the action (`failed`, `delayed`, `delivered`, `relayed`, `expanded`),
    /// the status, the remote MTA that answered and the diagnostic. Events
    /// of another kind than `kind` are ignored. A delay warning needs
    /// `delayWarning`. The new message's queue ID, or nil when nobody gets a
    /// report.
    static func send(_ kind: DeliveryStatusNotification.Kind, events: [DeliveryReport.Event], for active: ActiveMessage,
                     manager: QueueManager, delayWarning: DeliveryStatusNotification.DelayWarning? = nil)
        -> EventLoopFuture<QueueID?> {
        let eventLoop = manager.eventLoop
        let envelope = active.envelope
        let hostname = manager.context.configuration.string("myhostname")
        if envelope[info: .origin] == CleanupProtocol.Origin.doubleBounce.rawValue {
            if kind == .failure && !DeliveryReport.reportable(kind, events: events, envelope: envelope).isEmpty {
                manager.logger.info("\(active.id): undeliverable postmaster notification discarded")
            }
            return eventLoop.makeSucceededFuture(nil)
        }
        let now = WallClock.seconds()
        let local = WallClock.localTime(now)
        let tag = kind == .failure ? "" : kind == .delay ? ".delay" : ".success"
        guard let report = DeliveryReport.notification(
            kind, events: events, envelope: envelope, queueID: active.id, hostname: hostname, now: now,
            formatDate: { WallClock.localTime($0).rfc5322 },
            messageID: "<\(local.compactStamp).\(active.id)\(tag)@\(hostname)>",
            boundary: "\(active.id).\(now)\(tag)/\(hostname)", delayWarning: delayWarning) else {
            return eventLoop.makeSucceededFuture(nil)
        }

        let content: [UInt8]
        do {
            let path = manager.spool.file(.active, active.id.rawValue)
            let fd = try FileIO.open(path, O_RDONLY)
            defer { FileIO.close(fd) }
            content = try FileIO.pread(fd, count: envelope.contentLength, at: envelope.contentOffset, path: path)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }
        let message = report.message(original: content)

        let begin = CleanupProtocol.Begin(origin: report.isPostmasterCopy ? .doubleBounce : .bounce, sender: "",
                                          recipients: [report.reportRecipient], clientName: "", clientAddress: "",
                                          heloName: "", protocolName: "", bodyType: "8BITMIME")
        return IPCClient.connect(path: manager.spool.socket(.cleanup), on: eventLoop).flatMap { client in
            client.request(begin.frame).flatMap { frame -> EventLoopFuture<IPCFrame> in
                guard case .ok = try? CleanupProtocol.Reply(frame: frame) else {
                    return eventLoop.makeFailedFuture(IPCError.system("cleanup refused the report"))
                }
                var start = 0
                while start < message.count {
                    let end = min(message.count, start + IPCFrame.maximumChunk)
                    _ = client.send(CleanupProtocol.content(Array(message[start..<end])))
                    start = end
                }
                return client.request(IPCFrame(.cleanupCommit))
            }.flatMapThrowing { frame -> QueueID? in
                defer { client.close() }
                switch try CleanupProtocol.Reply(frame: frame) {
                case .ok(let id): return id
                case .refused(let reply): throw IPCError.system("cleanup refused the report: \(reply)")
                }
            }
        }
    }

    /// The success report for the recipients delivered in this pass whose
    /// NOTIFY includes SUCCESS (`active.successes`), queued in the
    /// background: the recipients are delivered whatever becomes of it, so
    /// a report that cannot be queued is logged and not tried again. Call it
    /// while the message is still in active/ (it reads the content at once).
    static func sendSuccessReport(for active: ActiveMessage, manager: QueueManager) {
        let recipients = active.envelope.recipients
        let events = active.successes.values.filter {
            recipients.indices.contains($0.index) && recipients[$0.index].status == .delivered
        }
        active.successes.removeAll()
        guard !events.isEmpty else { return }
        send(.success, events: events, for: active, manager: manager).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let id?):
                manager.logger.info("\(active.id): sender delivery status notification: \(id)")
            case .success(nil):
                break
            case .failure(let error):
                manager.logger.warning("\(active.id): cannot queue the delivery status notification: \(error)")
            }
        }
    }
}

extension ActiveMessage {
    /// The report event for a recipient's outcome: with the remote server
    /// and its reply when a server decided it.
    func event(_ index: Int, _ outcome: DeliveryOutcome, time: Int,
               deliveredAction: DeliveryStatusNotification.Action = .delivered) -> DeliveryReport.Event {
        guard let remote = remoteReplies[index], let reply = SMTPReply(description: remote.diagnostic) else {
            return DeliveryReport.Event(index: index, outcome: outcome, deliveredAction: deliveredAction, time: time)
        }
        var event = DeliveryReport.Event(index: index, outcome: outcome, deliveredAction: deliveredAction,
                                         remoteMTA: remote.mta, time: time)
        event.diagnostic = .smtp(reply)
        return event
    }

    /// Keeps, for the success report, each recipient a server took without
    /// DSN support (RFC 3461 section 6.2.6: "relayed"). A server with DSN
    /// support reports success itself, if asked.
    func noteSuccesses(_ result: SMTPDeliveryProtocol.Result) {
        guard !result.peerDSN else { return }
        let now = WallClock.seconds()
        for outcome in result.outcomes {
            guard case .delivered = outcome.outcome else { continue }
            successes[outcome.index] = event(outcome.index, outcome.outcome, time: now, deliveredAction: .relayed)
        }
    }

    /// Keeps, for the success report, each recipient a delivery agent
    /// reported delivered, with the RFC 3464 action it named.
    func noteSuccesses(_ result: LocalProtocol.Result) {
        let now = WallClock.seconds()
        for (index, outcome) in result.outcomes {
            guard case .delivered = outcome else { continue }
            successes[index] = DeliveryReport.Event(index: index, outcome: outcome,
                                                    deliveredAction: result.actions[index] ?? .delivered, time: now)
        }
    }
}
