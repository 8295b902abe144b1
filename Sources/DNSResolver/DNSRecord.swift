/// The record types a mail transfer agent asks for.
public enum DNSRecordType: Int32, Sendable, CustomStringConvertible {
    case a = 1
    case cname = 5
    case mx = 15
    case aaaa = 28

    public var description: String {
        switch self {
        case .a: return "A"
        case .cname: return "CNAME"
        case .mx: return "MX"
        case .aaaa: return "AAAA"
        }
    }
}

/// One resource record of an answer section, with the TTL left out: a
/// lookup is used once and never cached.
public struct DNSRecord: Sendable, Equatable {
    public enum Data: Sendable, Equatable {
        case a(IPAddress)
        case aaaa(IPAddress)
        /// The exchange is `""` for the root, as in a null MX.
        case mx(preference: Int, exchange: String)
        case cname(String)
        /// Any other type, by number (an answer may carry RRSIGs and such).
        case other(type: Int)
    }

    /// The owner name, lower-case, without a trailing dot.
    public var owner: String
    public var data: Data

    public init(owner: String, data: Data) {
        self.owner = DNSName.normalized(owner)
        self.data = data
    }

    var type: DNSRecordType? {
        switch data {
        case .a: return .a
        case .aaaa: return .aaaa
        case .mx: return .mx
        case .cname: return .cname
        case .other: return nil
        }
    }
}

/// Domain name text rules shared by the lookups.
public enum DNSName {
    /// Lower-case ASCII, no trailing dot; the root is `""`.
    public static func normalized(_ name: some StringProtocol) -> String {
        var out = String(name).lowercased()
        while out.hasSuffix(".") { out.removeLast() }
        return out
    }

    /// A name res_nquery can put in a question: non-empty labels of at most
    /// 63 octets, at most 253 octets in all, no NUL. Anything else is not a
    /// mail domain, so it is refused before a query is sent.
    public static func isQueryable(_ name: String) -> Bool {
        let bare = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard !bare.isEmpty, bare.utf8.count <= 253, !bare.utf8.contains(0) else { return false }
        return bare.split(separator: ".", omittingEmptySubsequences: false).allSatisfy {
            !$0.isEmpty && $0.utf8.count <= 63 && !$0.contains(" ")
        }
    }
}
