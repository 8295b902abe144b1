#if canImport(Glibc)
import Glibc
#endif
import DaemonSkeleton
import HikyakuIPC
import HikyakuSystem
import MailCore
import NIOCore
import QueueFormat

/// Queues the non-delivery report for a message's bounced recipients,
/// through cleanup like any other mail.
///
/// The report goes to the envelope sender. Mail with the null sender is not
/// returned (RFC 5321 section 4.5.5); its report goes to the postmaster
/// instead, and a failed report to the postmaster is dropped, so no loop can
/// form.
enum BounceNotice {
    /// The new message's queue ID, or nil when no report is due.
    static func send(for active: ActiveMessage, manager: QueueManager) -> EventLoopFuture<QueueID?> {
        let eventLoop = manager.eventLoop
        let envelope = active.envelope
        let hostname = manager.context.configuration.string("myhostname")
        if envelope[info: .origin] == CleanupProtocol.Origin.doubleBounce.rawValue {
            manager.logger.info("\(active.id): undeliverable postmaster notification discarded")
            return eventLoop.makeSucceededFuture(nil)
        }
        let doubleBounce = envelope.sender.isEmpty
        let recipient = doubleBounce ? "postmaster@\(hostname)" : envelope.sender

        let content: [UInt8]
        do {
            let path = manager.spool.file(.active, active.id.rawValue)
            let fd = try FileIO.open(path, O_RDONLY)
            defer { FileIO.close(fd) }
            content = try FileIO.pread(fd, count: envelope.contentLength, at: envelope.contentOffset, path: path)
        } catch {
            return eventLoop.makeFailedFuture(error)
        }

        let now = WallClock.seconds()
        let local = WallClock.localTime(now)
        let failures = active.bounced.sorted(by: { $0.key < $1.key }).map { index, outcome in
            DeliveryStatusNotification.Failure(
                recipient: envelope.recipients[index].address,
                originalRecipient: envelope.recipients[index].originalRecipient,
                status: outcome.status.isPermanent ? outcome.status : EnhancedStatusCode(5, outcome.status.subject, outcome.status.detail),
                diagnostic: outcome.text)
        }
        let report = DeliveryStatusNotification(
            hostname: hostname, queueID: active.id.rawValue, recipient: recipient,
            arrivalDate: WallClock.localTime(envelope.arrivalSeconds).rfc5322, date: local.rfc5322,
            messageID: "<\(local.compactStamp).\(active.id)@\(hostname)>",
            boundary: "\(active.id).\(now)/\(hostname)", failures: failures, isDoubleBounce: doubleBounce)
        var body = Array(report.head.utf8)
        body += content
        if content.last != 10 { body.append(10) }
        body += Array(report.trailer.utf8)
        let message = body

        let begin = CleanupProtocol.Begin(origin: doubleBounce ? .doubleBounce : .bounce, sender: "",
                                          recipients: [recipient], clientName: "", clientAddress: "",
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
}
