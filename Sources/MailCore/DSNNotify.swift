/// RFC 3461 NOTIFY: which delivery status notifications the sender wants for
/// one recipient. The raw value is the queue file's notify byte
/// (docs/INTERNALS.md); the empty set means NOTIFY was not given.
public struct DSNNotify: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    public static let success = DSNNotify(rawValue: 1)
    public static let failure = DSNNotify(rawValue: 2)
    public static let delay = DSNNotify(rawValue: 4)
    public static let never = DSNNotify(rawValue: 8)

    /// The value of an SMTP `NOTIFY=` parameter (RFC 3461 section 4.1):
    /// `NEVER` alone, or a comma-separated list of `SUCCESS`, `FAILURE` and
    /// `DELAY`, in any case. nil for anything else: an unknown word, an empty
    /// element, or `NEVER` together with another word.
    public init?(parameter: some StringProtocol) {
        self.init(words: parameter.split(separator: ",", omittingEmptySubsequences: false).map { Substring($0) })
    }

    /// The argument of `sendmail -N`: the same words, with spaces allowed
    /// around them (`-N "failure, delay"`).
    public init?(option: some StringProtocol) {
        self.init(words: option.split(separator: ",", omittingEmptySubsequences: false).map { Substring($0.trimming()) })
    }

    init?(words: [Substring]) {
        var flags = DSNNotify()
        for word in words {
            switch word.uppercased() {
            case "SUCCESS": flags.insert(.success)
            case "FAILURE": flags.insert(.failure)
            case "DELAY": flags.insert(.delay)
            case "NEVER": flags.insert(.never)
            default: return nil
            }
        }
        guard !flags.isEmpty, !flags.contains(.never) || flags == .never else { return nil }
        self = flags
    }

    /// A stored value is valid when it is empty, `NEVER` alone, or any mix of
    /// the other three.
    public var isValid: Bool { rawValue & ~0x0F == 0 && (!contains(.never) || self == .never) }

    /// Whether the sender wants a report of this kind. Without NOTIFY, failures
    /// are reported, and delays when delay warnings are on (RFC 3461 section
    /// 4.1 leaves the default to the MTA; this is Postfix's).
    public func wants(_ kind: DeliveryStatusNotification.Kind) -> Bool {
        if isEmpty { return kind != .success }
        switch kind {
        case .failure: return contains(.failure)
        case .delay: return contains(.delay)
        case .success: return contains(.success)
        }
    }

    /// `NEVER`, or the words in RFC order (`SUCCESS,FAILURE,DELAY`); empty
    /// when NOTIFY was not given.
    public var description: String {
        if contains(.never) { return "NEVER" }
        var words: [String] = []
        if contains(.success) { words.append("SUCCESS") }
        if contains(.failure) { words.append("FAILURE") }
        if contains(.delay) { words.append("DELAY") }
        return words.joined(separator: ",")
    }

    /// What a recipient made by alias or .forward expansion inherits: the same
    /// request without SUCCESS, since the expansion itself was reported as
    /// `expanded` (RFC 3461 section 6.2.7.3, as Postfix's local does). SUCCESS
    /// alone becomes NEVER.
    public var inheritedByExpansion: DSNNotify {
        guard contains(.success) else { return self }
        let rest = subtracting(.success)
        return rest.isEmpty ? .never : rest
    }
}
