import MailCore

/// The queue file format, version 2 (docs/INTERNALS.md has the grammar).
///
///     file      = magic envelope content end
///     magic     = "HKQ" %x02                 (version 1 files still read)
///     envelope  = arrival sender *info 1*(recipient *recipient-attribute) content-marker
///     record    = type:1 length:4 (big-endian) payload:length
///     content   = the message, LF line endings, as many bytes as `end` says
///     end       = "E" length:4 (=12) content-length:8 crc32c:4
///
/// Every record is length-prefixed: nothing to quote, nothing to escape. The
/// CRC-32C covers every byte before the end record with each recipient's
/// status byte counted as zero, so marking a recipient done in place keeps
/// the checksum valid while a torn or damaged file is still detected.
public enum QueueRecordType: UInt8, Sendable {
    case arrival = 0x54        // "T": seconds:8 microseconds:4
    case sender = 0x53         // "S": address text, empty for the null sender
    case info = 0x49           // "I": key NUL value
    case recipient = 0x52      // "R": status:1 notify:1 address-length:2 address original-recipient
    /// Version 2: an attribute of the recipient record just before it.
    case recipientAttribute = 0x41  // "A": key NUL value
    case contentMarker = 0x43  // "C": empty; content follows
    case end = 0x45            // "E"
}

/// Per-recipient state, kept in one byte so it can be updated in place.
public enum RecipientStatus: UInt8, Sendable, Equatable {
    case pending = 0
    case delivered = 1
    case bounced = 2
    /// Done without delivery or bounce (e.g. expired with the null sender).
    case dropped = 3
    /// Still to be delivered; the sender has had the delay warning
    /// (`delay_warning_time`), so it is not sent again.
    case pendingWarned = 4

    public var isDone: Bool { self != .pending && self != .pendingWarned }
}

public enum QueueFileConstants {
    /// What the writer writes: "HKQ" and the format version.
    public static let magic: [UInt8] = [0x48, 0x4B, 0x51, 0x02]  // "HKQ" 2
    public static let currentVersion: UInt8 = 2
    /// Versions the reader takes: 1 is version 2 without recipient attributes.
    public static let readableVersions: ClosedRange<UInt8> = 1...2
    public static let recordHeaderSize = 5
    public static let endRecordSize = 5 + 12
    /// Offset of the status byte inside a recipient record.
    public static let recipientStatusOffset = recordHeaderSize
    /// Envelope records are small; a larger one means a damaged file.
    public static let maximumEnvelopeRecord = 64 * 1024
}

/// Information about a message's origin, stored as `info` records.
public enum QueueInfoKey: String, Sendable, CaseIterable {
    case clientName = "client_name"
    case clientAddress = "client_address"
    case heloName = "helo_name"
    case protocolName = "protocol_name"
    case origin = "origin"            // smtp, local
    case bodyType = "body_type"       // 7BIT, 8BITMIME
    /// `yes` when the message came with SMTPUTF8 (RFC 6531).
    case smtpUTF8 = "smtputf8"
    case messageID = "message_id"
    case submitter = "submitter"
    /// RFC 3461 RET (`FULL` or `HDRS`) and ENVID (decoded).
    case dsnRet = "dsn_ret"
    case dsnEnvid = "dsn_envid"
}

/// Keys of recipient attribute records (version 2).
public enum QueueRecipientAttributeKey: String, Sendable, CaseIterable {
    /// RFC 3461 ORCPT, decoded: `addr-type;address`.
    case orcpt = "orcpt"
}

/// RFC 3461 NOTIFY as the recipient record's notify byte: the raw value of
/// ``DSNNotify`` (MailCore), 0 when NOTIFY was not given.
public enum NotifyFlags {
    public static let success = DSNNotify.success.rawValue, failure = DSNNotify.failure.rawValue
    public static let delay = DSNNotify.delay.rawValue, never = DSNNotify.never.rawValue

    /// `failure,delay` and the like (sendmail -N's spelling); 0 for empty
    /// text, nil for text that is not a NOTIFY list.
    public static func parse(_ text: String) -> UInt8? {
        if text.trimming().isEmpty { return 0 }
        return DSNNotify(option: text)?.rawValue
    }
}

/// One recipient as stored in the queue file.
public struct QueueRecipient: Equatable, Sendable {
    public var address: String
    /// The address before this host rewrote or expanded it (Postfix's
    /// orig_rcpt), empty if the same. Not RFC 3461 ORCPT: that is ``orcpt``.
    public var originalRecipient: String
    public var status: RecipientStatus
    /// RFC 3461 NOTIFY (``DSNNotify``'s raw value), 0 when not given.
    public var notify: UInt8
    /// RFC 3461 ORCPT as given by the sender, decoded (`rfc822;jun@example.jp`),
    /// empty when not given. Kept in a recipient attribute record.
    public var orcpt: String
    /// Recipient attributes this version does not know, kept as read.
    public var attributes: [String: String]
    /// File offset of this recipient's status byte.
    public var statusOffset: Int

    public init(address: String, originalRecipient: String = "", status: RecipientStatus = .pending,
                notify: UInt8 = 0, orcpt: String = "", attributes: [String: String] = [:], statusOffset: Int = 0) {
        self.address = address
        self.originalRecipient = originalRecipient
        self.status = status
        self.notify = notify
        self.orcpt = orcpt
        self.attributes = attributes
        self.statusOffset = statusOffset
    }

    /// NOTIFY and ORCPT as types. A notify byte or ORCPT that does not make
    /// sense counts as not given.
    public var dsn: RecipientDSN {
        let flags = DSNNotify(rawValue: notify)
        return RecipientDSN(notify: flags.isValid ? flags : [],
                            originalRecipient: orcpt.isEmpty ? nil : OriginalRecipient(stored: orcpt))
    }
}

/// Everything in a queue file but the content.
public struct QueueEnvelope: Equatable, Sendable {
    public var arrivalSeconds: Int
    public var arrivalMicroseconds: Int
    /// Empty for the null sender.
    public var sender: String
    public var info: [String: String]
    public var recipients: [QueueRecipient]
    public var contentOffset: Int
    public var contentLength: Int

    public init(arrivalSeconds: Int, arrivalMicroseconds: Int = 0, sender: String, info: [String: String] = [:],
                recipients: [QueueRecipient], contentOffset: Int = 0, contentLength: Int = 0) {
        self.arrivalSeconds = arrivalSeconds
        self.arrivalMicroseconds = arrivalMicroseconds
        self.sender = sender
        self.info = info
        self.recipients = recipients
        self.contentOffset = contentOffset
        self.contentLength = contentLength
    }

    public subscript(info key: QueueInfoKey) -> String? {
        get { info[key.rawValue] }
        set { info[key.rawValue] = newValue }
    }

    public var pendingRecipients: [QueueRecipient] { recipients.filter { !$0.status.isDone } }

    /// RFC 3461 RET, when the sender gave a valid one.
    public var dsnReturn: DSNReturn? { self[info: .dsnRet].flatMap { DSNReturn(parameter: $0) } }

    /// RFC 3461 ENVID, when the sender gave a valid one.
    public var dsnEnvelopeID: String? { self[info: .dsnEnvid].flatMap { DSNEnvelopeID.validated($0) } }
}
