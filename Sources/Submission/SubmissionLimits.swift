import MailCore

/// What cleanup would refuse for good once pickup hands it a local message
/// (`CleanupTransaction.finish`), checked before the message leaves its
/// sender, so the caller hears of it: the sendmail command and hikyaku-drop
/// both check (the helper does not trust its caller to have done so).
///
/// - Size: cleanup takes up to `message_size_limit` plus 64 KiB for the
///   header fields pickup and cleanup add; the message itself, as sendmail
///   normalized it (LF line endings), may have `message_size_limit` bytes,
///   the bound smtpd applies to a message from the network.
/// - Hops: cleanup refuses more than 100 `Received:` fields, and pickup adds
///   one, so the message may bring at most 99.
public struct SubmissionLimits: Sendable, Equatable {
    /// `message_size_limit`; 0 means no limit.
    public var sizeLimit: Int

    public static let maximumReceivedFields = 100

    public init(sizeLimit: Int) {
        self.sizeLimit = sizeLimit
    }

    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case tooBig(size: Int, limit: Int)
        case tooManyHops(received: Int)

        public var description: String {
            switch self {
            case .tooBig(let size, let limit):
                return "message file too big: \(size) bytes, more than message_size_limit (\(limit) bytes)"
            case .tooManyHops(let received):
                return "too many hops: \(received) Received: header fields; at most \(SubmissionLimits.maximumReceivedFields - 1) are taken, since one more is added when the message is queued"
            }
        }

        /// The reply cleanup would give, for `sendmail -bs`.
        public var reply: SMTPReply {
            switch self {
            case .tooBig: return SMTPReply(552, EnhancedStatusCode(5, 3, 4), "Error: message file too big")
            case .tooManyHops: return SMTPReply(554, EnhancedStatusCode(5, 4, 6), "Error: too many hops")
            }
        }
    }

    /// The refusal due for this message content (LF line endings), if any.
    public func check(_ content: [UInt8]) -> Refusal? {
        if sizeLimit > 0 && content.count > sizeLimit { return .tooBig(size: content.count, limit: sizeLimit) }
        let received = Self.receivedFields(in: content)
        if received + 1 > Self.maximumReceivedFields { return .tooManyHops(received: received) }
        return nil
    }

    /// `Received:` fields in the header section, counted by the same header
    /// reader cleanup uses, so both agree on where the header ends.
    static func receivedFields(in content: [UInt8]) -> Int {
        var repair = HeaderRepair(additions: HeaderRepair.Additions(messageID: "", date: "", from: nil))
        var scratch: [UInt8] = []
        var start = 0
        while start < content.count {
            // In pieces, so the copy it passes through stays small.
            let end = min(content.count, start + 65536)
            content[start..<end].withUnsafeBytes { repair.feed($0, into: &scratch) }
            scratch.removeAll(keepingCapacity: true)
            start = end
        }
        repair.finish(into: &scratch)
        return repair.receivedCount
    }
}
