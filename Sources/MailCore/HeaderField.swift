/// RFC 5322 header-line helpers that work on raw line bytes (no line ending).
public enum HeaderField {
    /// The field name of a header line (`Subject` for `Subject: hi`), or nil if
    /// the line does not start a header field. Whitespace before the colon is
    /// allowed (RFC 5322 obsolete syntax).
    public static func name(of line: some Collection<UInt8>) -> Substring? {
        var nameEnd: Int? = nil
        var index = 0
        for c in line {
            if c == UInt8(ascii: ":") {
                let end = nameEnd ?? index
                guard end > 0 else { return nil }
                return Substring(String(decoding: line.prefix(end), as: UTF8.self))
            }
            if c == 0x20 || c == 0x09 {
                if nameEnd == nil { nameEnd = index }
            } else if nameEnd != nil || c < 33 || c > 126 {
                return nil
            }
            index += 1
        }
        return nil
    }

    /// A continuation line of a folded header starts with space or tab.
    public static func isContinuation(_ line: some Collection<UInt8>) -> Bool {
        guard let first = line.first else { return false }
        return first == 0x20 || first == 0x09
    }
}
