import MailCore

/// Messages to and from cleanup (private/cleanup).
///
///     client                         cleanup
///     begin(envelope)          ->
///                              <-    reply(ok, queue ID) | reply(error)
///     content(bytes) ...       ->    (no reply)
///     commit                   ->
///                              <-    reply(ok, queue ID) | reply(error)
///     abort                    ->    (no reply; the file is removed)
///
/// Content is LF-terminated lines. One connection may carry many
/// transactions, one after another.
public enum CleanupProtocol {
    public enum Origin: String, Sendable {
        case smtp, local
        /// A non-delivery report made by qmgr (null sender).
        case bounce
        /// A report to the postmaster about mail that could not be returned;
        /// if it fails in turn, it is dropped, never bounced again.
        case doubleBounce = "double_bounce"
        /// Re-sent by local to an alias or .forward target elsewhere.
        case forward
    }

    public struct Begin: Equatable, Sendable {
        public var origin: Origin
        /// Empty for the null sender.
        public var sender: String
        public var recipients: [String]
        public var clientName: String
        public var clientAddress: String
        public var heloName: String
        public var protocolName: String
        public var bodyType: String
        /// Local submissions (-t): remove Bcc header fields.
        public var removeBcc = false
        /// Local submissions (-F): the name for a From: field that is added.
        public var fullName = ""
        /// DSN (RFC 3461): NOTIFY for every recipient (sendmail -N), RET
        /// (`FULL`, `HDRS`), ENVID (decoded). cleanup ignores values that are
        /// not valid.
        public var notify = ""
        public var ret = ""
        public var envid = ""
        /// NOTIFY and ORCPT of each recipient, in step with `recipients`, or
        /// empty. A recipient's own NOTIFY wins over `notify`.
        public var recipientDSN: [RecipientDSN] = []
        /// Local submissions: the submitting user's uid.
        public var submitter = ""
        /// SMTPUTF8 (RFC 6531): the message may only go to servers that
        /// offer it.
        public var smtpUTF8 = false

        public init(origin: Origin, sender: String, recipients: [String], clientName: String = "",
                    clientAddress: String = "", heloName: String = "", protocolName: String = "",
                    bodyType: String = "") {
            self.origin = origin
            self.sender = sender
            self.recipients = recipients
            self.clientName = clientName
            self.clientAddress = clientAddress
            self.heloName = heloName
            self.protocolName = protocolName
            self.bodyType = bodyType
        }

        public var frame: IPCFrame {
            var f = IPCFrame(.cleanupBegin)
            f.add(.origin, origin.rawValue)
            f.add(.sender, sender)
            for r in recipients { f.add(.recipient, r) }
            f.add(.clientName, clientName)
            f.add(.clientAddress, clientAddress)
            f.add(.heloName, heloName)
            f.add(.protocolName, protocolName)
            f.add(.bodyType, bodyType)
            if removeBcc { f.add(.found, true) }
            if !fullName.isEmpty { f.add(.text, fullName) }
            if !notify.isEmpty { f.add(.notify, notify) }
            if !ret.isEmpty { f.add(.statusWord, ret) }
            if !envid.isEmpty { f.add(.messageID, envid) }
            for dsn in recipientDSN {
                f.add(.recipientNotify, Int(dsn.notify.rawValue))
                f.add(.orcpt, dsn.originalRecipient?.stored ?? "")
            }
            if !submitter.isEmpty { f.add(.localUser, submitter) }
            if smtpUTF8 { f.add(.smtpUTF8, true) }
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .cleanupBegin else { throw .unexpectedMessage(frame.type.rawValue) }
            guard let origin = Origin(rawValue: try frame.require(.origin)) else {
                throw .missingAttribute(key: IPCKey.origin.rawValue, type: frame.type.rawValue)
            }
            self.origin = origin
            sender = try frame.require(.sender)
            recipients = frame.strings(.recipient)
            clientName = frame.string(.clientName) ?? ""
            clientAddress = frame.string(.clientAddress) ?? ""
            heloName = frame.string(.heloName) ?? ""
            protocolName = frame.string(.protocolName) ?? ""
            smtpUTF8 = frame.bool(.smtpUTF8) ?? false
            bodyType = frame.string(.bodyType) ?? ""
            removeBcc = frame.bool(.found) ?? false
            fullName = frame.string(.text) ?? ""
            notify = frame.string(.notify) ?? ""
            ret = frame.string(.statusWord) ?? ""
            envid = frame.string(.messageID) ?? ""
            recipientDSN = try CleanupProtocol.decodeRecipientDSN(in: frame, recipients: recipients.count)
            submitter = frame.string(.localUser) ?? ""
        }
    }

    /// Per-recipient NOTIFY and ORCPT: none at all, or exactly one of each
    /// per recipient, each valid (`orcpt` may be empty).
    static func decodeRecipientDSN(in frame: IPCFrame, recipients: Int) throws(IPCError) -> [RecipientDSN] {
        let notifies = frame.attributes.filter { $0.key == .recipientNotify }
        let originals = frame.strings(.orcpt)
        if notifies.isEmpty && originals.isEmpty { return [] }
        guard notifies.count == recipients, originals.count == recipients else {
            throw .missingAttribute(key: IPCKey.recipientNotify.rawValue, type: frame.type.rawValue)
        }
        var out: [RecipientDSN] = []
        for (notify, original) in zip(notifies, originals) {
            let value = notify.value.count == 8 ? IPCFrame.decodeInt(notify.value[...]) : -1
            guard (0...255).contains(value), DSNNotify(rawValue: UInt8(value)).isValid else {
                throw .badAttribute(key: IPCKey.recipientNotify.rawValue, type: frame.type.rawValue)
            }
            var dsn = RecipientDSN(notify: DSNNotify(rawValue: UInt8(value)))
            if !original.isEmpty {
                guard let parsed = OriginalRecipient(stored: original) else {
                    throw .badAttribute(key: IPCKey.orcpt.rawValue, type: frame.type.rawValue)
                }
                dsn.originalRecipient = parsed
            }
            out.append(dsn)
        }
        return out
    }

    public enum Reply: Equatable, Sendable {
        case ok(QueueID)
        /// An SMTP-shaped refusal: the reply to give the client.
        case refused(SMTPReply)

        public var frame: IPCFrame {
            var f = IPCFrame(.cleanupReply)
            switch self {
            case .ok(let id):
                f.add(.status, 0)
                f.add(.queueID, id.rawValue)
            case .refused(let reply):
                f.add(.status, 1)
                f.add(.replyCode, reply.code)
                if let enhanced = reply.enhanced { f.add(.enhancedStatus, enhanced.description) }
                f.add(.text, reply.lines.joined(separator: " "))
            }
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .cleanupReply else { throw .unexpectedMessage(frame.type.rawValue) }
            if try frame.requireInt(.status) == 0 {
                guard let id = QueueID(try frame.require(.queueID)) else {
                    throw .missingAttribute(key: IPCKey.queueID.rawValue, type: frame.type.rawValue)
                }
                self = .ok(id)
            } else {
                let code = try frame.requireInt(.replyCode)
                let enhanced = frame.string(.enhancedStatus).flatMap { EnhancedStatusCode(parsing: $0) }
                self = .refused(SMTPReply(code, enhanced, frame.string(.text) ?? "Error"))
            }
        }
    }

    public static func content(_ bytes: [UInt8]) -> IPCFrame {
        IPCFrame(.cleanupContent, [IPCAttribute(key: .content, value: bytes)])
    }
}
