import MailCore

/// Assembles a server's reply lines into replies (RFC 5321 section 4.2):
/// `250-first`, `250-more`, `250 last`. The peer is untrusted: a line that
/// is not `NNN[ -]text`, a code that changes inside one reply, or a reply
/// longer than the limits is a protocol error, and the session must end.
public struct SMTPReplyReader: Sendable {
    public enum Failure: Error, Equatable, Sendable {
        case malformedLine(String)
        case tooManyLines
    }

    public static let maximumLines = 100
    var code: Int? = nil
    var lines: [String] = []

    public init() {}

    /// One line without its CRLF. Returns the reply when this line ends it.
    public mutating func feed(line: String) throws(Failure) -> SMTPReply? {
        let bytes = Array(line.utf8)
        guard bytes.count >= 3, bytes[0...2].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              bytes.count == 3 || bytes[3] == 0x20 || bytes[3] == 0x2D,
              let value = Int(String(decoding: bytes[0...2], as: UTF8.self)), (200...599).contains(value)
        else { throw .malformedLine(Self.printable(line)) }
        if let code, code != value { throw .malformedLine(Self.printable(line)) }
        code = value
        let text = bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : ""
        lines.append(text)
        guard lines.count <= Self.maximumLines else { throw .tooManyLines }
        let last = bytes.count == 3 || bytes[3] == 0x20
        guard last else { return nil }
        defer { code = nil; lines = [] }
        return Self.reply(code: value, lines: lines)
    }

    /// A reply whose first line starts with an enhanced status code of the
    /// same class (RFC 2034) carries it; the code is taken off every line
    /// that repeats it.
    static func reply(code: Int, lines: [String]) -> SMTPReply {
        guard let first = lines.first, let space = first.firstIndex(of: " ") ?? (first.isEmpty ? nil : first.endIndex),
              let enhanced = EnhancedStatusCode(parsing: first[first.startIndex..<space]),
              enhanced.statusClass == code / 100 else {
            return SMTPReply(code, nil, lines: lines)
        }
        let prefix = enhanced.description
        let stripped = lines.map { line -> String in
            guard line.hasPrefix(prefix) else { return line }
            return String(line.dropFirst(prefix.count).drop(while: { $0 == " " }))
        }
        return SMTPReply(code, enhanced, lines: stripped)
    }

    static func printable(_ line: String) -> String {
        String(line.unicodeScalars.prefix(80).map { $0.value < 0x20 || $0.value > 0x7e ? "?" : Character($0) })
    }
}
