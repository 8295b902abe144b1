/// RFC 3461 section 4 "xtext": how ENVID and ORCPT values travel in an SMTP
/// command. Every byte from `!` to `~` stands for itself except `+` and `=`;
/// any byte may be written `+HH` (two hexadecimal digits).
///
///     xtext   = *( xchar / hexchar )
///     xchar   = %x21-2A / %x2C-3C / %x3E-7E
///     hexchar = "+" 2HEXDIG
public enum XText {
    /// The bytes an xtext stands for, or nil when the text is not xtext: a
    /// byte outside `!`...`~`, a bare `=`, or a `+` without two hexadecimal
    /// digits after it. RFC 3461 writes the digits in upper case; lower case
    /// is accepted, as Postfix and sendmail accept it.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                out.append(high << 4 | low)
            case UInt8(ascii: "="):
                return nil
            case 0x21...0x7E:
                out.append(byte)
            default:
                return nil
            }
        }
        return out
    }

    /// The xtext form of `text`: `+`, `=`, spaces, control characters and
    /// every byte beyond ASCII as `+HH`.
    public static func encode(_ text: some StringProtocol) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte >= 0x21 && byte <= 0x7E && byte != UInt8(ascii: "+") && byte != UInt8(ascii: "=") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "+" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0x0F, radix: 16, uppercase: true)
            }
        }
        return out
    }

    /// True when every byte is printable US-ASCII, space included: what RFC
    /// 3461 requires of a decoded ENVID or ORCPT address, and what keeps a
    /// value from starting a new line in a report.
    public static func isPrintable(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
