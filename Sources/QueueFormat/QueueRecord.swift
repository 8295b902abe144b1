import MailCore

/// The queue file format, version 1 (docs/INTERNALS.md has the grammar).
///
///     file      = magic envelope content end
///     magic     = "HKQ" %x01
///     envelope  = arrival sender *info 1*recipient content-marker
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

    public var isDone: Bool { self != .pending }
}

public enum QueueFileConstants {
    public static let magic: [UInt8] = [0x48, 0x4B, 0x51, 0x01]  // "HKQ" 1
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
    case messageID = "message_id"
    case submitter = "submitter"
    /// RFC 3461 RET and ENVID.
    case dsnRet = "dsn_ret"
    case dsnEnvid = "dsn_envid"
}

/// RFC 3461 NOTIFY as the recipient record's notify byte.
public enum NotifyFlags {
    public static let success: UInt8 = 1, failure: UInt8 = 2, delay: UInt8 = 4, never: UInt8 = 8

    /// `failure,delay` and the like; nil for text that is not a NOTIFY list.
    public static func parse(_ text: String) -> UInt8? {
        var flags: UInt8 = 0
        for word in text.uppercased().split(separator: ",") {
            switch word.trimmingCharacters() {
            case "SUCCESS": flags |= success
            case "FAILURE": flags |= failure
            case "DELAY": flags |= delay
            case "NEVER": flags |= never
            default: return nil
            }
        }
        if flags & never != 0 && flags != never { return nil }
        return flags
    }

    /// The NOTIFY parameter for a flags byte: `NEVER`, `SUCCESS,DELAY`;
    /// empty when none was given.
    public static func text(_ flags: UInt8) -> String {
        if flags & never != 0 { return "NEVER" }
        var words: [String] = []
        if flags & success != 0 { words.append("SUCCESS") }
        if flags & failure != 0 { words.append("FAILURE") }
        if flags & delay != 0 { words.append("DELAY") }
        return words.joined(separator: ",")
    }
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " { s = s.dropFirst() }
        while let l = s.last, l == " " { s = s.dropLast() }
        return String(s)
    }
}

/// One recipient as stored in the queue file.
public struct QueueRecipient: Equatable, Sendable {
    public var address: String
    /// The address as the client gave it (RFC 3461 ORCPT), empty if the same.
    public var originalRecipient: String
    public var status: RecipientStatus
    public var notify: UInt8
    /// File offset of this recipient's status byte.
    public var statusOffset: Int

    public init(address: String, originalRecipient: String = "", status: RecipientStatus = .pending,
                notify: UInt8 = 0, statusOffset: Int = 0) {
        self.address = address
        self.originalRecipient = originalRecipient
        self.status = status
        self.notify = notify
        self.statusOffset = statusOffset
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
}
