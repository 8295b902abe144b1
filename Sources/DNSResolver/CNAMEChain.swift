/// Following CNAME records (RFC 1034 §3.6.2, RFC 5321 §5.1: "if a CNAME
/// record is found, the resulting name is processed as if it were the
/// initial name") through one answer section, and telling the caller when
/// to ask again for the target because the server did not chase it.
public struct CNAMEChain: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        /// Records of the asked type owned by the canonical name.
        case found(canonical: String, records: [DNSRecord.Data])
        /// The chain ends at a name the answer has nothing more for: ask
        /// for that name.
        case askAgain(String)
        /// The answer holds neither the asked type nor a CNAME for the name.
        case noData
        /// A name came back, or the chain grew past the limit.
        case loop
    }

    /// Every name met so far, normalised.
    public private(set) var visited: Set<String>
    /// CNAME records followed so far, across every answer.
    public private(set) var length = 0
    public let limit: Int

    public init(start: String, limit: Int = DNSLookup.maximumCNAMEChain) {
        visited = [DNSName.normalized(start)]
        self.limit = limit
    }

    /// Walks `answers`, the answer section of the reply to a query for
    /// `name` and `type`.
    public mutating func follow(_ name: String, type: DNSRecordType, answers: [DNSRecord]) -> Step {
        let start = DNSName.normalized(name)
        var owner = start
        while true {
            let records = answers.filter { $0.owner == owner && $0.type == type }.map(\.data)
            if !records.isEmpty { return .found(canonical: owner, records: records) }
            guard let alias = answers.first(where: { $0.owner == owner && $0.type == .cname }),
                  case .cname(let target) = alias.data else {
                return owner == start ? .noData : .askAgain(owner)
            }
            length += 1
            let next = DNSName.normalized(target)
            guard length <= limit, !visited.contains(next) else { return .loop }
            visited.insert(next)
            owner = next
        }
    }
}
