/// The message as it goes on the wire after DATA (RFC 5321 section 4.5.2):
/// every line ends in CRLF, whatever the queue holds (LF, or a stray CRLF),
/// and a line that starts with `.` gets one more. The end-of-data line is
/// not included.
public enum OutgoingContent {
    /// Encodes `content` (LF line endings) in one pass; a last line without
    /// a newline gets CRLF too.
    public static func encode<Bytes: Collection>(_ content: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(content.count + content.count / 32 + 2)
        var atLineStart = true
        var previous: UInt8 = 0
        for byte in content {
            if atLineStart && byte == 0x2E { out.append(0x2E) }
            atLineStart = false
            if byte == 0x0A {
                if previous != 0x0D { out.append(0x0D) }
                out.append(0x0A)
                atLineStart = true
            } else {
                out.append(byte)
            }
            previous = byte
        }
        if !atLineStart {
            out.append(0x0D)
            out.append(0x0A)
        }
        return out
    }

    /// The end of data.
    public static let terminator: [UInt8] = Array(".\r\n".utf8)

    /// Whether any byte is outside 7-bit ASCII.
    public static func hasEightBit<Bytes: Sequence>(_ content: Bytes) -> Bool where Bytes.Element == UInt8 {
        content.contains { $0 >= 0x80 }
    }
}
