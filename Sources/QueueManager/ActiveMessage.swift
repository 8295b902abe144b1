import HikyakuIPC
import MailCore
import QueueFormat

/// A message in active/: its envelope and what has happened to each
/// recipient during this pass through the queue.
final class ActiveMessage {
    let id: QueueID
    var envelope: QueueEnvelope
    /// Wall-clock microseconds when the message entered active/.
    let activatedAt: Int
    /// Deliveries queued or in flight.
    var outstanding = 0
    /// Recipients still being resolved with aliasd.
    var resolving = 0
    /// Recipients aliasd could not be asked about in this round, and why.
    var unresolved: [Int] = []
    var resolverError = ""
    /// Recipients that must be tried again later, with the reason.
    var deferred: [Int: DeliveryOutcome] = [:]
    /// Recipients whose agent vanished mid-delivery: how often.
    var agentFailures: [Int: Int] = [:]
    /// Recipients bounced in this pass (the bounce notice is owed).
    var bounced: [Int: DeliveryOutcome] = [:]
    /// Recipients delivered in this pass, for the success report (RFC 3461
    /// NOTIFY=SUCCESS; BounceNotice.sendSuccessReport).
    var successes: [Int: DeliveryReport.Event] = [:]
    /// Local recipients grouped by user while they are being resolved.
    var localGroups: [String: [Int]] = [:]
    /// The local user each local recipient resolved to.
    var localUsers: [Int: String] = [:]
    /// Remote recipients grouped by route (mailer, host field) while they
    /// are being resolved.
    var remoteGroups: [RemoteRoute: [Int]] = [:]
    /// The address a remote recipient is sent to, when routing rewrote it.
    var remoteAddresses: [Int: String] = [:]
    /// What the server said, for delivery status notifications: the
    /// server's name and its reply.
    var remoteReplies: [Int: (mta: String, diagnostic: String)] = [:]

    init(id: QueueID, envelope: QueueEnvelope, activatedAt: Int) {
        self.id = id
        self.envelope = envelope
        self.activatedAt = activatedAt
    }

    var isSettled: Bool { outstanding == 0 && resolving == 0 }

    func mark(_ index: Int, _ status: RecipientStatus) {
        envelope.recipients[index].status = status
    }
}

/// A remote route: sendmail's mailer and host field.
struct RemoteRoute: Hashable, Comparable {
    var mailer: String
    var nexthop: String

    static func < (a: RemoteRoute, b: RemoteRoute) -> Bool {
        (a.nexthop, a.mailer) < (b.nexthop, b.mailer)
    }
}
