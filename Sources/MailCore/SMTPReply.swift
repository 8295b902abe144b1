/// One SMTP reply: a three-digit code, an optional enhanced status code, and
/// one or more lines of text.
public struct SMTPReply: Hashable, Sendable, CustomStringConvertible {
    public var code: Int
    public var enhanced: EnhancedStatusCode?
    public var lines: [String]

    public init(_ code: Int, _ enhanced: EnhancedStatusCode?, _ text: String) {
        self.code = code
        self.enhanced = enhanced
        self.lines = [text]
    }

    public init(_ code: Int, _ enhanced: EnhancedStatusCode?, lines: [String]) {
        precondition(!lines.isEmpty, "an SMTP reply has at least one line")
        self.code = code
        self.enhanced = enhanced
        self.lines = lines
    }

    public var isPositive: Bool { code < 400 }
    public var isTransient: Bool { (400..<500).contains(code) }
    public var isPermanent: Bool { code >= 500 }

    /// The reply as sent on the wire, CRLF-terminated, with `code-` on every
    /// line but the last. smtpd always includes enhanced codes, as Postfix
    /// and sendmail do; `false` leaves them out.
    public func wireText(enhancedStatusCodes: Bool = true) -> String {
        var out = ""
        for (index, line) in lines.enumerated() {
            out += String(code)
            out += index == lines.count - 1 ? " " : "-"
            if enhancedStatusCodes, let enhanced {
                out += enhanced.description
                if !line.isEmpty { out += " " }
            }
            out += Self.sanitized(line)
            out += "\r\n"
        }
        return out
    }

    /// The reply as one log-friendly line: `550 5.1.1 text`.
    public var description: String {
        var out = String(code)
        if let enhanced { out += " " + enhanced.description }
        let text = lines.joined(separator: " ")
        if !text.isEmpty { out += " " + Self.sanitized(text) }
        return out
    }

    /// Reads back ``description``: `550 5.1.1 text` (the enhanced code
    /// only when its class matches the reply code's).
    public init?(description: String) {
        let bytes = Array(description.utf8)
        guard bytes.count >= 3, let code = Int(String(decoding: bytes[0..<3], as: UTF8.self)), (200...599).contains(code),
              bytes.count == 3 || bytes[3] == 0x20 else { return nil }
        var rest = bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : ""
        var enhanced: EnhancedStatusCode? = nil
        let first = rest.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        if let word = first.first, let status = EnhancedStatusCode(parsing: word), status.statusClass == code / 100 {
            enhanced = status
            rest = first.count > 1 ? String(first[1]) : ""
        }
        self.init(code, enhanced, rest)
    }

    /// Reply text never carries CR, LF or other control characters: a reply is
    /// built from addresses and names a client chose.
    static func sanitized(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map { ($0.value < 0x20 || $0.value == 0x7f) ? " " : $0 }))
    }
}
