/// An RFC 5321 mailbox: `local-part@domain`, or a bare local part, which is
/// then qualified by whoever knows the local domain.
///
/// The local part is kept exactly as written (quoted strings included) so that
/// nothing is lost on the way through the queue; ``localPartKey`` gives the
/// unquoted, case-folded form used for lookups.
public struct MailAddress: Hashable, Sendable, CustomStringConvertible {
    public var localPart: String
    public var domain: String?

    public init(localPart: String, domain: String?) {
        self.localPart = localPart
        self.domain = domain
    }

    /// `local@domain`, as written.
    public var description: String {
        guard let domain else { return localPart }
        return "\(localPart)@\(domain)"
    }

    /// Whether the address needs SMTPUTF8 to be sent (RFC 6531).
    public var isASCII: Bool { description.utf8.allSatisfy { $0 < 0x80 } }

    /// The domain in lower case, for comparisons (domains are case-insensitive).
    public var lowercasedDomain: String? { domain.map { $0.asciiLowercased() } }

    /// The local part unquoted and in lower case: the key for alias and user lookups.
    public var localPartKey: String { Self.unquote(localPart).asciiLowercased() }

    /// The same mailbox with the domain filled in when it has none.
    public func qualified(with defaultDomain: String) -> MailAddress {
        domain == nil ? MailAddress(localPart: localPart, domain: defaultDomain) : self
    }

    /// Byte by byte, as the parsers below read: a quote or a backslash can
    /// be part of a larger Character (after a prepended mark).
    static func unquote(_ local: String) -> String {
        let bytes = local.utf8
        guard bytes.count >= 2, bytes.first == UInt8(ascii: "\""), bytes.last == UInt8(ascii: "\"") else { return local }
        var out: [UInt8] = []
        var escaped = false
        for byte in bytes.dropFirst().dropLast() {
            if escaped { out.append(byte); escaped = false }
            else if byte == UInt8(ascii: "\\") { escaped = true }
            else { out.append(byte) }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Why an address was refused; each case maps to one SMTP reply.
public enum AddressSyntaxError: Error, Hashable, Sendable {
    case empty
    case missingBrackets
    case badLocalPart
    case badDomain
    case nonASCII
    case tooLong
}

extension MailAddress {
    /// RFC 5321 limits (section 4.5.3.1): 64 octets of local part, 255 of domain,
    /// 256 of path including the angle brackets.
    public static let maximumLocalPartLength = 64
    public static let maximumDomainLength = 255
    public static let maximumPathLength = 256

    /// Parses an SMTP reverse-path or forward-path: `<user@example.org>`,
    /// `<@relay:user@example.org>` (the source route is dropped, as RFC 5321
    /// tells receivers to), `<>` (returns nil: the null path), or, when
    /// `requireBrackets` is false, the bare `user@example.org` many clients send.
    /// With `allowUTF8`, local parts and domains may hold UTF-8 (RFC 6531,
    /// SMTPUTF8); the caller checks the extension was asked for.
    ///
    /// The parsers read UTF-8 bytes, not Characters: a Character can hold a
    /// quote, `@` or `>` behind a mark that combines with it (U+0600 before
    /// `"`, `@` before U+0301), and another program reading the same bytes
    /// must find the same local part and domain.
    public static func parsePath(_ text: Substring, requireBrackets: Bool = false,
                                 allowUTF8: Bool = false) throws(AddressSyntaxError) -> MailAddress? {
        var body = text
        let bracketed = text.utf8.first == UInt8(ascii: "<")
        if bracketed {
            guard text.utf8.count >= 2, text.utf8.last == UInt8(ascii: ">") else { throw .missingBrackets }
            body = text[text.utf8.index(after: text.startIndex)..<text.utf8.index(before: text.endIndex)]
        } else if requireBrackets || text.utf8.last == UInt8(ascii: ">") {
            throw .missingBrackets
        }
        if body.isEmpty {
            if bracketed { return nil }
            throw .empty
        }
        guard text.utf8.count <= maximumPathLength else { throw .tooLong }
        guard allowUTF8 || body.utf8.allSatisfy({ $0 < 0x80 }) else { throw .nonASCII }
        if body.utf8.first == UInt8(ascii: "@") {
            // A-d-l: "@one,@two:mailbox". Skip to the colon outside any quotes.
            guard let colon = body.utf8.firstIndex(of: UInt8(ascii: ":")) else { throw .badDomain }
            let route = body[body.utf8.index(after: body.startIndex)..<colon]
            for hop in route.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
                let name = hop.first == UInt8(ascii: "@") ? route[hop.index(after: hop.startIndex)..<hop.endIndex]
                                                          : route[hop.startIndex..<hop.endIndex]
                guard isValidDomain(name, allowUTF8: allowUTF8) else { throw .badDomain }
            }
            body = body[body.utf8.index(after: colon)...]
        }
        return try parseMailbox(body, allowUTF8: allowUTF8)
    }

    /// Parses `local@domain` or a bare `local`.
    public static func parseMailbox(_ text: Substring, allowUTF8: Bool = false) throws(AddressSyntaxError) -> MailAddress {
        guard !text.isEmpty else { throw .empty }
        guard allowUTF8 || text.utf8.allSatisfy({ $0 < 0x80 }) else { throw .nonASCII }
        let (local, rest) = try scanLocalPart(text, allowUTF8: allowUTF8)
        guard local.utf8.count <= maximumLocalPartLength else { throw .tooLong }
        if rest.isEmpty {
            return MailAddress(localPart: String(local), domain: nil)
        }
        guard rest.utf8.first == UInt8(ascii: "@") else { throw .badLocalPart }
        let domain = rest[rest.utf8.index(after: rest.startIndex)...]
        guard domain.utf8.count <= maximumDomainLength else { throw .tooLong }
        guard isValidDomain(domain, allowUTF8: allowUTF8) || isValidAddressLiteral(domain) else { throw .badDomain }
        return MailAddress(localPart: String(local), domain: String(domain))
    }

    /// Splits off a Dot-string or Quoted-string local part.
    static func scanLocalPart(_ text: Substring, allowUTF8: Bool = false) throws(AddressSyntaxError) -> (Substring, Substring) {
        if text.utf8.first == UInt8(ascii: "\"") {
            var index = text.utf8.index(after: text.startIndex)
            var escaped = false
            while index < text.endIndex {
                let c = text.utf8[index]
                if escaped {
                    guard c >= 0x20 && c <= 0x7e else { throw .badLocalPart }
                    escaped = false
                } else if c == UInt8(ascii: "\\") {
                    escaped = true
                } else if c == UInt8(ascii: "\"") {
                    let end = text.utf8.index(after: index)
                    return (text[..<end], text[end...])
                } else if !(c == 32 || c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126) || (allowUTF8 && c >= 0x80)) {
                    throw .badLocalPart
                }
                index = text.utf8.index(after: index)
            }
            throw .badLocalPart
        }
        let end = text.utf8.lastIndex(of: UInt8(ascii: "@")) ?? text.endIndex
        let local = text[..<end]
        guard isValidDotString(local, allowUTF8: allowUTF8) else { throw .badLocalPart }
        return (local, text[end...])
    }

    static func isAtext(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-/=?^_`{|}~".utf8.contains(c)
        }
    }

    static func isValidDotString(_ text: Substring, allowUTF8: Bool = false) -> Bool {
        guard !text.isEmpty else { return false }
        return text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy { atom in
            !atom.isEmpty && atom.allSatisfy { isAtext($0) || (allowUTF8 && $0 >= 0x80) }
        }
    }

    /// RFC 5321 Domain: dot-separated labels of letters, digits and hyphens,
    /// not starting or ending with a hyphen. A trailing dot is refused.
    /// With `allowUTF8`, labels may be U-labels (RFC 6531): their non-ASCII
    /// characters count as letters.
    public static func isValidDomain(_ text: Substring, allowUTF8: Bool = false) -> Bool {
        guard !text.isEmpty, text.utf8.count <= maximumDomainLength else { return false }
        let letter = { (c: UInt8) in isLetterDigit(c) || (allowUTF8 && c >= 0x80) }
        return text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy { label in
            guard let first = label.first, let last = label.last, label.count <= 63 else { return false }
            return letter(first) && letter(last) && label.allSatisfy { letter($0) || $0 == UInt8(ascii: "-") }
        }
    }

    /// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
    public static func isValidAddressLiteral(_ text: Substring) -> Bool {
        guard text.first == "[", text.last == "]", text.count > 2 else { return false }
        let inner = text.dropFirst().dropLast()
        if inner.lowercased().hasPrefix("ipv6:") {
            let v6 = inner.dropFirst(5)
            return !v6.isEmpty && v6.count <= 45
                && v6.utf8.allSatisfy { isHexDigit($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ".") }
                && v6.contains(":")
        }
        let octets = inner.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { o in
            guard (1...3).contains(o.count), let v = Int(o), o.utf8.allSatisfy(isDigit) else { return false }
            return v <= 255
        }
    }

    public static func isLetterDigit(_ c: UInt8) -> Bool {
        isDigit(c) || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "z"))
    }
    static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
    static func isHexDigit(_ c: UInt8) -> Bool {
        isDigit(c) || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "f"))
    }
}

extension StringProtocol {
    /// Lower-cases ASCII letters only; never touches other bytes, so the result
    /// is stable whatever the locale.
    public func asciiLowercased() -> String {
        String(decoding: utf8.map { ($0 >= 0x41 && $0 <= 0x5a) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}
