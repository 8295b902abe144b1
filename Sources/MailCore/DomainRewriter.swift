/// sendmail's domaintable applied to addresses in header fields: every
/// `user@domain` whose domain is a key (exactly, not a subdomain) gets the
/// table's domain. Quoted strings and comments are left alone.
public struct DomainRewriter: Sendable, Equatable {
    /// Lower-case old domain to new domain.
    public let table: [String: String]

    public init(table: [String: String]) {
        self.table = Dictionary(uniqueKeysWithValues: table.map { ($0.key.asciiLowercased(), $0.value) })
    }

    public var isEmpty: Bool { table.isEmpty }

    /// The header fields whose addresses are rewritten.
    public static let addressFields: Set<String> = [
        "from", "to", "cc", "bcc", "reply-to", "sender", "resent-from", "resent-to", "resent-cc",
        "resent-bcc", "resent-sender", "return-receipt-to", "errors-to",
    ]

    public func rewriteDomain(_ domain: String) -> String? {
        var key = domain.asciiLowercased()
        while key.hasSuffix(".") { key.removeLast() }
        return table[key]
    }

    /// An envelope address: `user@old.example` becomes `user@new.example`.
    public func rewriteAddress(_ address: String) -> String {
        guard !table.isEmpty, let at = address.lastIndex(of: "@") else { return address }
        guard let new = rewriteDomain(String(address[address.index(after: at)...])) else { return address }
        return String(address[...at]) + new
    }

    /// A header field's value (the part after the colon, folded lines
    /// included). Returns nil when nothing changed.
    public func rewriteHeaderValue(_ value: [UInt8]) -> [UInt8]? {
        guard !table.isEmpty else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(value.count)
        var changed = false
        var i = 0
        var inQuotes = false
        var commentDepth = 0
        let n = value.count
        func isDomainByte(_ c: UInt8) -> Bool {
            MailAddress.isLetterDigit(c) || c == UInt8(ascii: "-") || c == UInt8(ascii: ".")
        }
        while i < n {
            let c = value[i]
            if c == UInt8(ascii: "\\") && i + 1 < n {
                out.append(c); out.append(value[i + 1]); i += 2; continue
            }
            if inQuotes {
                if c == UInt8(ascii: "\"") { inQuotes = false }
                out.append(c); i += 1; continue
            }
            if commentDepth > 0 {
                if c == UInt8(ascii: "(") { commentDepth += 1 }
                if c == UInt8(ascii: ")") { commentDepth -= 1 }
                out.append(c); i += 1; continue
            }
            if c == UInt8(ascii: "\"") { inQuotes = true }
            if c == UInt8(ascii: "(") { commentDepth = 1 }
            out.append(c)
            i += 1
            guard c == UInt8(ascii: "@") else { continue }
            var j = i
            while j < n && isDomainByte(value[j]) { j += 1 }
            guard j > i else { continue }
            let domain = String(decoding: value[i..<j], as: UTF8.self)
            if let new = rewriteDomain(domain) {
                out += Array(new.utf8)
                changed = true
            } else {
                out += value[i..<j]
            }
            i = j
        }
        return changed ? out : nil
    }
}
