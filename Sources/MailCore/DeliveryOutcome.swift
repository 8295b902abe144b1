/// The result of one delivery attempt for one recipient.
public enum DeliveryOutcome: Equatable, Sendable {
    case delivered(EnhancedStatusCode, String)
    /// Try again later.
    case deferred(EnhancedStatusCode, String)
    /// Give up and return the message to its sender.
    case bounced(EnhancedStatusCode, String)

    public var status: EnhancedStatusCode {
        switch self {
        case .delivered(let s, _), .deferred(let s, _), .bounced(let s, _): return s
        }
    }

    public var text: String {
        switch self {
        case .delivered(_, let t), .deferred(_, let t), .bounced(_, let t): return t
        }
    }

    /// The word Postfix logs: `sent`, `deferred`, `bounced`.
    public var logWord: String {
        switch self {
        case .delivered: return "sent"
        case .deferred: return "deferred"
        case .bounced: return "bounced"
        }
    }

    public var code: Int {
        switch self {
        case .delivered: return 0
        case .deferred: return 1
        case .bounced: return 2
        }
    }

    public init?(code: Int, status: EnhancedStatusCode, text: String) {
        switch code {
        case 0: self = .delivered(status, text)
        case 1: self = .deferred(status, text)
        case 2: self = .bounced(status, text)
        default: return nil
        }
    }
}
