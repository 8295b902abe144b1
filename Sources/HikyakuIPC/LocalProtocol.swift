import MailCore

/// Messages between qmgr and local (private/local): one delivery request for
/// one or more recipients of one queue file, one result per recipient.
/// local reads the content itself from `active/QUEUEID` at the given offset.
public enum LocalProtocol {
    public struct Recipient: Equatable, Sendable {
        public var index: Int
        public var address: String
        public var originalRecipient: String
        /// The local user or alias the address resolved to (virtusertable
        /// and mailertable's `local:` may name another than the local part).
        public var localUser: String

        public init(index: Int, address: String, originalRecipient: String, localUser: String = "") {
            self.index = index
            self.address = address
            self.originalRecipient = originalRecipient
            self.localUser = localUser
        }
    }

    public struct Request: Equatable, Sendable {
        public var queueID: QueueID
        public var sender: String
        public var arrivalSeconds: Int
        public var contentOffset: Int
        public var contentLength: Int
        public var recipients: [Recipient]
        /// Times for the log's delays= field, microseconds since the epoch.
        public var arrivalMicroseconds: Int
        public var activatedAt: Int
        public var dispatchedAt: Int

        public init(queueID: QueueID, sender: String, arrivalSeconds: Int, contentOffset: Int,
                    contentLength: Int, recipients: [Recipient], arrivalMicroseconds: Int = 0,
                    activatedAt: Int = 0, dispatchedAt: Int = 0) {
            self.queueID = queueID
            self.sender = sender
            self.arrivalSeconds = arrivalSeconds
            self.contentOffset = contentOffset
            self.contentLength = contentLength
            self.recipients = recipients
            self.arrivalMicroseconds = arrivalMicroseconds
            self.activatedAt = activatedAt
            self.dispatchedAt = dispatchedAt
        }

        public var frame: IPCFrame {
            var f = IPCFrame(.localDeliver)
            f.add(.queueID, queueID.rawValue)
            f.add(.sender, sender)
            f.add(.arrivalSeconds, arrivalSeconds)
            f.add(.contentOffset, contentOffset)
            f.add(.contentLength, contentLength)
            f.add(.arrivalMicroseconds, arrivalMicroseconds)
            f.add(.activatedAt, activatedAt)
            f.add(.dispatchedAt, dispatchedAt)
            for r in recipients {
                f.add(.recipientIndex, r.index)
                f.add(.recipient, r.address)
                f.add(.originalRecipient, r.originalRecipient)
                f.add(.localUser, r.localUser)
            }
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .localDeliver else { throw .unexpectedMessage(frame.type.rawValue) }
            guard let id = QueueID(try frame.require(.queueID)) else {
                throw .missingAttribute(key: IPCKey.queueID.rawValue, type: frame.type.rawValue)
            }
            queueID = id
            sender = try frame.require(.sender)
            arrivalSeconds = try frame.requireInt(.arrivalSeconds)
            contentOffset = try frame.requireInt(.contentOffset)
            contentLength = try frame.requireInt(.contentLength)
            arrivalMicroseconds = frame.int(.arrivalMicroseconds) ?? 0
            activatedAt = frame.int(.activatedAt) ?? 0
            dispatchedAt = frame.int(.dispatchedAt) ?? 0
            let indexes = frame.ints(.recipientIndex)
            let addresses = frame.strings(.recipient)
            let originals = frame.strings(.originalRecipient)
            let users = frame.strings(.localUser)
            guard indexes.count == addresses.count, originals.count == addresses.count, users.count == addresses.count,
                  !addresses.isEmpty else {
                throw .missingAttribute(key: IPCKey.recipient.rawValue, type: frame.type.rawValue)
            }
            recipients = (0..<addresses.count).map {
                Recipient(index: indexes[$0], address: addresses[$0], originalRecipient: originals[$0], localUser: users[$0])
            }
        }
    }

    public struct Result: Equatable, Sendable {
        public var outcomes: [(index: Int, outcome: DeliveryOutcome)]
        /// For delivered recipients, the RFC 3464 action of a success report:
        /// `delivered` (a mailbox, file or command; also a list with an
        /// owner-), or `expanded` (an alias or .forward). Absent: delivered.
        public var actions: [Int: DeliveryStatusNotification.Action]

        public init(outcomes: [(index: Int, outcome: DeliveryOutcome)], actions: [Int: DeliveryStatusNotification.Action] = [:]) {
            self.outcomes = outcomes
            self.actions = actions
        }

        public static func == (a: Result, b: Result) -> Bool {
            a.outcomes.count == b.outcomes.count && zip(a.outcomes, b.outcomes).allSatisfy { $0.index == $1.index && $0.outcome == $1.outcome }
                && a.actions == b.actions
        }

        public var frame: IPCFrame {
            var f = IPCFrame(.localResult)
            for (index, outcome) in outcomes {
                f.add(.recipientIndex, index)
                f.add(.status, outcome.code)
                f.add(.enhancedStatus, outcome.status.description)
                f.add(.text, outcome.text)
                f.add(.dsnAction, actions[index]?.rawValue ?? "")
            }
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .localResult else { throw .unexpectedMessage(frame.type.rawValue) }
            let indexes = frame.ints(.recipientIndex)
            let codes = frame.ints(.status)
            let statuses = frame.strings(.enhancedStatus)
            let texts = frame.strings(.text)
            guard indexes.count == codes.count, codes.count == statuses.count, statuses.count == texts.count else {
                throw .missingAttribute(key: IPCKey.status.rawValue, type: frame.type.rawValue)
            }
            var outcomes: [(Int, DeliveryOutcome)] = []
            for k in 0..<indexes.count {
                guard let status = EnhancedStatusCode(parsing: statuses[k]),
                      let outcome = DeliveryOutcome(code: codes[k], status: status, text: texts[k]) else {
                    throw .missingAttribute(key: IPCKey.status.rawValue, type: frame.type.rawValue)
                }
                outcomes.append((indexes[k], outcome))
            }
            self.outcomes = outcomes
            // One action per outcome (empty: none), or none at all from an
            // agent that sends no actions.
            let words = frame.strings(.dsnAction)
            guard words.isEmpty || words.count == indexes.count else {
                throw .missingAttribute(key: IPCKey.dsnAction.rawValue, type: frame.type.rawValue)
            }
            var actions: [Int: DeliveryStatusNotification.Action] = [:]
            for (index, word) in zip(indexes, words) where !word.isEmpty {
                guard let action = DeliveryStatusNotification.Action(rawValue: word) else {
                    throw .badAttribute(key: IPCKey.dsnAction.rawValue, type: frame.type.rawValue)
                }
                actions[index] = action
            }
            self.actions = actions
        }
    }
}
