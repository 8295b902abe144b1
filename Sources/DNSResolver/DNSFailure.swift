import MailCore

/// A lookup that gave no usable answer, as the delivery status it leads to
/// and the text Postfix would log and put in the bounce.
public struct DNSFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: EnhancedStatusCode
    public var text: String

    public init(_ status: EnhancedStatusCode, _ text: String) {
        self.status = status
        self.text = text
    }

    /// Try again later (4.x.x) rather than return the message (5.x.x).
    public var isTemporary: Bool { status.isTransient }

    /// What the delivery agent does with the recipient.
    public var outcome: DeliveryOutcome {
        isTemporary ? .deferred(status, text) : .bounced(status, text)
    }

    public var description: String { "\(status) \(text)" }
}

/// Why one DNS query gave no records, from the resolver's `h_errno` (which
/// glibc derives from the reply's RCODE) or from reading the reply.
public enum QueryFailure: Error, Sendable, Equatable {
    /// NXDOMAIN: the name does not exist (`HOST_NOT_FOUND`).
    case nameNotFound
    /// NOERROR without a record of the asked type (`NO_DATA`).
    case noData
    /// SERVFAIL, REFUSED or NOTIMP from every server, no reply in time, or
    /// no server reachable (`TRY_AGAIN`: glibc's res_send tries the next
    /// server on those RCODEs and reports the lot as one temporary failure).
    case tryAgain
    /// FORMERR or another RCODE the resolver gives up on (`NO_RECOVERY`).
    case noRecovery
    /// A local error (`NETDB_INTERNAL`) with its errno.
    case system(Int32)
    /// A reply that ns_initparse or ns_parserr could not read.
    case malformedReply
    /// A CNAME chain that comes back to a name already seen, or is longer
    /// than ``DNSLookup/maximumCNAMEChain``.
    case cnameLoop
    /// Not a name DNS can carry: an empty label, a label over 63 octets or
    /// a name over 253.
    case invalidName

    /// Maps the resolver's `h_errno` after a failed res_nquery.
    public init(hErrno: Int32, errno: Int32) {
        switch hErrno {
        case 1: self = .nameNotFound      // HOST_NOT_FOUND
        case 2: self = .tryAgain          // TRY_AGAIN
        case 3: self = .noRecovery        // NO_RECOVERY
        case 4: self = .noData            // NO_DATA
        default: self = .system(errno)    // NETDB_INTERNAL (-1) and anything unknown
        }
    }

    /// Whether asking again later can give another answer. A CNAME loop and
    /// an unanswerable server are temporary, as Postfix treats them: an
    /// administrator can fix the zone before the message expires, and a
    /// deferral loses nothing.
    public var isTemporary: Bool {
        switch self {
        case .nameNotFound, .noData, .invalidName: return false
        case .tryAgain, .noRecovery, .system, .malformedReply, .cnameLoop: return true
        }
    }

    /// Postfix's words for each (dns_strerror), so logs read the same.
    public var reason: String {
        switch self {
        case .nameNotFound: return "Host not found"
        case .noData: return "Host found but no data record of requested type"
        case .tryAgain: return "Host not found, try again"
        case .noRecovery: return "Non-recoverable error"
        case .system(let code): return "Resolver internal error: \(systemErrorText(code))"
        case .malformedReply: return "Malformed or unexpected name server reply"
        case .cnameLoop: return "CNAME loop or chain longer than \(DNSLookup.maximumCNAMEChain)"
        case .invalidName: return "Malformed domain name"
        }
    }

    func text(name: String, type: DNSRecordType) -> String {
        "Host or domain name not found. Name service error for name=\(name) type=\(type): \(reason)"
    }

    /// The failure of the MX lookup for a mail domain: NXDOMAIN is 5.1.2
    /// (bad destination system), a malformed name too, anything temporary
    /// 4.4.3. `.noData` is not a failure there (the domain is its own
    /// mail exchanger) and is reported as the address lookup's result.
    public func mxFailure(domain: String) -> DNSFailure {
        let text = text(name: domain, type: .mx)
        if isTemporary { return DNSFailure(EnhancedStatusCode(4, 4, 3), text) }
        return DNSFailure(EnhancedStatusCode(5, 1, 2), text)
    }

    /// The failure of an address lookup for a mail server's name: 5.4.4
    /// (unable to route) when the name or its addresses do not exist, 4.4.3
    /// when the answer may change, as Postfix's smtp_addr_one.
    public func addressFailure(host: String, type: DNSRecordType) -> DNSFailure {
        let text = text(name: host, type: type)
        if isTemporary { return DNSFailure(EnhancedStatusCode(4, 4, 3), text) }
        return DNSFailure(EnhancedStatusCode(5, 4, 4), text)
    }
}

func systemErrorText(_ code: Int32) -> String {
    guard code != 0, let text = strerrorText(code) else { return "errno \(code)" }
    return text
}
