#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address, kept as its 4 or 16 bytes in network order.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public enum Family: Sendable { case v4, v6 }

    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// `192.0.2.1`, `2001:db8::1`, or `IPv6:2001:db8::1` (RFC 5321's
    /// address literal tag, which `[IPv6:...]` next hops carry).
    public init?(parsing text: some StringProtocol) {
        var text = String(text)
        if text.count > 5, text.prefix(5).lowercased() == "ipv6:" {
            text = String(text.dropFirst(5))
            guard let parsed = Self.parse(text, family: AF_INET6) else { return nil }
            self = parsed
            return
        }
        guard let parsed = Self.parse(text, family: AF_INET) ?? Self.parse(text, family: AF_INET6) else { return nil }
        self = parsed
    }

    private static func parse(_ text: String, family: Int32) -> IPAddress? {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 == 0x2e || $0 == 0x3a || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) }) else {
            return nil
        }
        var buffer = [UInt8](repeating: 0, count: family == AF_INET ? 4 : 16)
        guard inet_pton(family, text, &buffer) == 1 else { return nil }
        return IPAddress(bytes: buffer)
    }

    public var family: Family { bytes.count == 4 ? .v4 : .v6 }

    /// An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) as the IPv4 address
    /// it stands for; any other address unchanged.
    public var unmapped: IPAddress {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff else { return self }
        return IPAddress(bytes: Array(bytes[12..<16]))!
    }

    /// The address as `inet_ntop` writes it: `192.0.2.1`, `2001:db8::1`.
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(family == .v4 ? AF_INET : AF_INET6, raw.baseAddress, &text, socklen_t(text.count)) != nil
        }
        guard ok else { return bytes.map { String($0) }.joined(separator: ".") }
        return String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The RFC 5321 address literal without brackets: `192.0.2.1`,
    /// `IPv6:2001:db8::1`.
    public var literal: String { family == .v4 ? description : "IPv6:" + description }
}
