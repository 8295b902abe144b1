import MailCore

/// Messages between qmgr and smtp-client (private/smtp): one request for one
/// message and one destination, with the recipients that go there; one
/// result with every recipient's outcome. smtp-client reads the content
/// itself from `active/QUEUEID` at the given offset.
public enum SMTPDeliveryProtocol {
    public struct Recipient: Equatable, Sendable {
        public var index: Int
        public var address: String
        /// RFC 3461 NOTIFY as the queue holds it (`SUCCESS,DELAY`), or empty.
        public var notify: String
        /// RFC 3461 ORCPT, decoded (`rfc822;user@example.org`), or empty.
        public var originalRecipient: String

        public init(index: Int, address: String, notify: String = "", originalRecipient: String = "") {
            self.index = index
            self.address = address
            self.notify = notify
            self.originalRecipient = originalRecipient
        }
    }

    public struct Request: Equatable, Sendable {
        public var queueID: QueueID
        public var sender: String
        /// sendmail's mailer (`esmtp`, `smtp`, `relay`...) and host field:
        /// `example.org` (MX lookup), `[host]` (none), either with `:port`.
        public var mailer: String
        public var nexthop: String
        public var recipients: [Recipient]
        public var contentOffset: Int
        public var contentLength: Int
        /// `8BITMIME`, `7BIT` or empty (unknown: smtp-client looks).
        public var bodyType: String
        public var smtpUTF8: Bool
        public var ret: String
        public var envid: String
        /// Microseconds since the epoch, for the log's delays= field.
        public var arrivalMicroseconds: Int
        public var activatedAt: Int
        public var dispatchedAt: Int

        public init(queueID: QueueID, sender: String, mailer: String, nexthop: String, recipients: [Recipient],
                    contentOffset: Int, contentLength: Int, bodyType: String = "", smtpUTF8: Bool = false,
                    ret: String = "", envid: String = "", arrivalMicroseconds: Int = 0, activatedAt: Int = 0,
                    dispatchedAt: Int = 0) {
            self.queueID = queueID
            self.sender = sender
            self.mailer = mailer
            self.nexthop = nexthop
            self.recipients = recipients
            self.contentOffset = contentOffset
            self.contentLength = contentLength
            self.bodyType = bodyType
            self.smtpUTF8 = smtpUTF8
            self.ret = ret
            self.envid = envid
            self.arrivalMicroseconds = arrivalMicroseconds
            self.activatedAt = activatedAt
            self.dispatchedAt = dispatchedAt
        }

        public var frame: IPCFrame {
            var f = IPCFrame(.smtpDeliver)
            f.add(.queueID, queueID.rawValue)
            f.add(.sender, sender)
            f.add(.mailer, mailer)
            f.add(.nexthop, nexthop)
            f.add(.contentOffset, contentOffset)
            f.add(.contentLength, contentLength)
            f.add(.bodyType, bodyType)
            f.add(.smtpUTF8, smtpUTF8)
            f.add(.statusWord, ret)
            f.add(.messageID, envid)
            f.add(.arrivalMicroseconds, arrivalMicroseconds)
            f.add(.activatedAt, activatedAt)
            f.add(.dispatchedAt, dispatchedAt)
            for r in recipients {
                f.add(.recipientIndex, r.index)
                f.add(.recipient, r.address)
                f.add(.notify, r.notify)
                f.add(.orcpt, r.originalRecipient)
            }
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .smtpDeliver else { throw .unexpectedMessage(frame.type.rawValue) }
            guard let id = QueueID(try frame.require(.queueID)) else {
                throw .missingAttribute(key: IPCKey.queueID.rawValue, type: frame.type.rawValue)
            }
            queueID = id
            sender = try frame.require(.sender)
            mailer = try frame.require(.mailer)
            nexthop = try frame.require(.nexthop)
            contentOffset = try frame.requireInt(.contentOffset)
            contentLength = try frame.requireInt(.contentLength)
            bodyType = frame.string(.bodyType) ?? ""
            smtpUTF8 = frame.bool(.smtpUTF8) ?? false
            ret = frame.string(.statusWord) ?? ""
            envid = frame.string(.messageID) ?? ""
            arrivalMicroseconds = frame.int(.arrivalMicroseconds) ?? 0
            activatedAt = frame.int(.activatedAt) ?? 0
            dispatchedAt = frame.int(.dispatchedAt) ?? 0
            let indexes = frame.ints(.recipientIndex)
            let addresses = frame.strings(.recipient)
            let notifies = frame.strings(.notify)
            let originals = frame.strings(.orcpt)
            guard !addresses.isEmpty, indexes.count == addresses.count, notifies.count == addresses.count,
                  originals.count == addresses.count else {
                throw .missingAttribute(key: IPCKey.recipient.rawValue, type: frame.type.rawValue)
            }
            recipients = (0..<addresses.count).map {
                Recipient(index: indexes[$0], address: addresses[$0], notify: notifies[$0], originalRecipient: originals[$0])
            }
        }
    }

    /// One recipient's outcome, with what DSN reports need: the server that
    /// answered and its reply.
    public struct Outcome: Equatable, Sendable {
        public var index: Int
        public var outcome: DeliveryOutcome
        /// `mx.example.org`, or empty when no server answered.
        public var remoteMTA: String
        /// `550 5.1.1 <user@example.org>: User unknown`, or empty.
        public var diagnostic: String

        public init(index: Int, outcome: DeliveryOutcome, remoteMTA: String = "", diagnostic: String = "") {
            self.index = index
            self.outcome = outcome
            self.remoteMTA = remoteMTA
            self.diagnostic = diagnostic
        }
    }

    public struct Result: Equatable, Sendable {
        public var outcomes: [Outcome]
        /// No host of the destination took a session (connection refused,
        /// timeouts, 4xx greetings): qmgr lowers its concurrency.
        public var destinationFailed: Bool
        /// The server that took the message announced DSN.
        public var peerDSN: Bool

        public init(outcomes: [Outcome], destinationFailed: Bool = false, peerDSN: Bool = false) {
            self.outcomes = outcomes
            self.destinationFailed = destinationFailed
            self.peerDSN = peerDSN
        }

        public var frame: IPCFrame {
            var f = IPCFrame(.smtpResult)
            f.add(.destinationFailed, destinationFailed)
            f.add(.peerDSN, peerDSN)
            for o in outcomes {
                f.add(.recipientIndex, o.index)
                f.add(.status, o.outcome.code)
                f.add(.enhancedStatus, o.outcome.status.description)
                f.add(.text, o.outcome.text)
                f.add(.remoteMTA, o.remoteMTA)
                f.add(.diagnostic, o.diagnostic)
            }
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .smtpResult else { throw .unexpectedMessage(frame.type.rawValue) }
            destinationFailed = frame.bool(.destinationFailed) ?? false
            peerDSN = frame.bool(.peerDSN) ?? false
            let indexes = frame.ints(.recipientIndex)
            let codes = frame.ints(.status)
            let statuses = frame.strings(.enhancedStatus)
            let texts = frame.strings(.text)
            let remotes = frame.strings(.remoteMTA)
            let diagnostics = frame.strings(.diagnostic)
            guard [codes.count, statuses.count, texts.count, remotes.count, diagnostics.count].allSatisfy({ $0 == indexes.count }) else {
                throw .missingAttribute(key: IPCKey.status.rawValue, type: frame.type.rawValue)
            }
            var outcomes: [Outcome] = []
            for k in indexes.indices {
                guard let status = EnhancedStatusCode(parsing: statuses[k]),
                      let outcome = DeliveryOutcome(code: codes[k], status: status, text: texts[k]) else {
                    throw .missingAttribute(key: IPCKey.status.rawValue, type: frame.type.rawValue)
                }
                outcomes.append(Outcome(index: indexes[k], outcome: outcome, remoteMTA: remotes[k], diagnostic: diagnostics[k]))
            }
            self.outcomes = outcomes
        }
    }
}
