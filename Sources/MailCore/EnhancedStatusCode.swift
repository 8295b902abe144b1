/// An RFC 3463 enhanced mail system status code, `class.subject.detail`.
public struct EnhancedStatusCode: Hashable, Sendable, CustomStringConvertible {
    public var statusClass: Int
    public var subject: Int
    public var detail: Int

    public init(_ statusClass: Int, _ subject: Int, _ detail: Int) {
        self.statusClass = statusClass
        self.subject = subject
        self.detail = detail
    }

    /// Parses `2.0.0`; returns nil for anything that is not three dotted numbers
    /// with a class of 2, 4 or 5.
    public init?(parsing text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3,
              let c = Int(parts[0]), let s = Int(parts[1]), let d = Int(parts[2]),
              [2, 4, 5].contains(c), (0...999).contains(s), (0...999).contains(d),
              parts.allSatisfy({ $0.count <= 3 && $0.allSatisfy(\.isASCII) })
        else { return nil }
        self.init(c, s, d)
    }

    public var description: String { "\(statusClass).\(subject).\(detail)" }

    public var isSuccess: Bool { statusClass == 2 }
    public var isTransient: Bool { statusClass == 4 }
    public var isPermanent: Bool { statusClass == 5 }
}
