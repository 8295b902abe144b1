import MailCore

/// Which recipients of a queued message one event is reported for, and the
/// report: the pure half of qmgr's failure reports, delay warnings and
/// success reports (the other half reads the content and queues the report
/// through cleanup).
///
/// The rules, RFC 3461's as Postfix applies them:
/// - a recipient is reported only when its NOTIFY asks for this kind of
///   report (``DSNNotify/wants(_:)``: NEVER never, no NOTIFY failures and
///   delays only);
/// - mail with the null sender gets no report back; a failure of it is
///   reported to the postmaster instead (`isPostmasterCopy`), and nothing
///   else is reported about it at all;
/// - one report lists every reported recipient of the event, in queue file
///   order, with its ORCPT when the sender gave one, and carries the
///   message's ENVID and RET.
public struct DeliveryReport: Sendable {
    /// What happened to one recipient, as the delivery agent or qmgr found it.
    public struct Event: Sendable, Hashable {
        /// The recipient's position in the queue file.
        public var index: Int
        public var action: DeliveryStatusNotification.Action
        public var status: EnhancedStatusCode
        /// The remote server that answered, if one did.
        public var remoteMTA: String?
        public var diagnostic: DeliveryStatusNotification.Diagnostic
        /// When it happened, seconds since the epoch (`Last-Attempt-Date`).
        public var time: Int?

        public init(index: Int, action: DeliveryStatusNotification.Action, status: EnhancedStatusCode,
                    remoteMTA: String? = nil, diagnostic: DeliveryStatusNotification.Diagnostic, time: Int? = nil) {
            self.index = index
            self.action = action
            self.status = status
            self.remoteMTA = remoteMTA
            self.diagnostic = diagnostic
            self.time = time
        }

        /// An event from a delivery outcome: `failed` for a bounce,
        /// `delayed` for a deferral, and for a delivery the action given.
        public init(index: Int, outcome: DeliveryOutcome, deliveredAction: DeliveryStatusNotification.Action = .delivered,
                    remoteMTA: String? = nil, time: Int? = nil) {
            let action: DeliveryStatusNotification.Action
            switch outcome {
            case .delivered: action = deliveredAction
            case .deferred: action = .delayed
            case .bounced: action = .failed
            }
            self.init(index: index, action: action, status: outcome.status, remoteMTA: remoteMTA,
                      diagnostic: .local(outcome.text), time: time)
        }
    }

    /// Where a report goes and in which role, or nil when the message gets
    /// none of this kind: the sender, or for a failure of null-sender mail
    /// the postmaster.
    public static func destination(_ kind: DeliveryStatusNotification.Kind, envelope: QueueEnvelope,
                                   hostname: String) -> (recipient: String, postmasterCopy: Bool)? {
        if !envelope.sender.isEmpty { return (envelope.sender, false) }
        return kind == .failure ? ("postmaster@\(hostname)", true) : nil
    }

    /// The events whose recipients asked for this kind of report, in queue
    /// file order; events of another kind and unknown indexes are left out.
    public static func reportable(_ kind: DeliveryStatusNotification.Kind, events: [Event],
                                  envelope: QueueEnvelope) -> [Event] {
        events.filter { event in
            event.action.kind == kind && envelope.recipients.indices.contains(event.index)
                && envelope.recipients[event.index].dsn.notify.wants(kind)
        }.sorted { $0.index < $1.index }
    }

    /// The report for an event, or nil when nobody gets one (see the rules
    /// above). `formatDate` turns seconds since the epoch into an RFC 5322
    /// date-time; `now` is the report's own time.
    public static func notification(
        _ kind: DeliveryStatusNotification.Kind, events: [Event], envelope: QueueEnvelope, queueID: QueueID,
        hostname: String, now: Int, formatDate: (Int) -> String, messageID: String, boundary: String,
        delayWarning: DeliveryStatusNotification.DelayWarning? = nil
    ) -> DeliveryStatusNotification? {
        guard let destination = destination(kind, envelope: envelope, hostname: hostname) else { return nil }
        let chosen = reportable(kind, events: events, envelope: envelope)
        guard !chosen.isEmpty else { return nil }
        let recipients = chosen.map { event -> DeliveryStatusNotification.Recipient in
            let queued = envelope.recipients[event.index]
            return DeliveryStatusNotification.Recipient(
                finalRecipient: queued.address,
                expandedFrom: queued.originalRecipient.isEmpty ? nil : queued.originalRecipient,
                originalRecipient: queued.dsn.originalRecipient,
                action: event.action, status: event.status, remoteMTA: event.remoteMTA,
                diagnostic: event.diagnostic, lastAttemptDate: event.time.map(formatDate))
        }
        return DeliveryStatusNotification(
            kind: kind, hostname: hostname, original: .queued(id: queueID.rawValue, sender: envelope.sender),
            reportRecipient: destination.recipient, isPostmasterCopy: destination.postmasterCopy,
            envelopeID: envelope.dsnEnvelopeID, returnContent: envelope.dsnReturn ?? .full,
            arrivalDate: formatDate(envelope.arrivalSeconds), date: formatDate(now), messageID: messageID,
            boundary: boundary, recipients: recipients, delayWarning: delayWarning)
    }
}
