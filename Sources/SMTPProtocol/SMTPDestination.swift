/// Where an SMTP delivery goes, from the host field of a route
/// (mailertable, smart host, or the recipient's domain):
///
/// - `example.org` – the domain's MX hosts (RFC 5321 section 5.1)
/// - `[mail.example.org]` – that host itself, no MX lookup
/// - `[192.0.2.1]`, `[IPv6:2001:db8::1]` – an address literal
/// - any of these with `:port`
public struct SMTPDestination: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var mxLookup: Bool

    public init(host: String, port: Int = 25, mxLookup: Bool) {
        self.host = host
        self.port = port
        self.mxLookup = mxLookup
    }

    public enum ParseError: Error, Equatable, Sendable {
        case empty
        case badPort(String)
        case badHost(String)
    }

    /// Parses a host field; `defaultPort` is used when it names none.
    public static func parse(_ text: String, defaultPort: Int = 25) throws(ParseError) -> SMTPDestination {
        var rest = text.trimmingSpaces()
        guard !rest.isEmpty else { throw .empty }
        var host: Substring
        var bracketed = false
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw .badHost(text) }
            host = rest[rest.index(after: rest.startIndex)..<close]
            rest = rest[rest.index(after: close)...]
            bracketed = true
            if host.lowercased().hasPrefix("ipv6:") { host = host.dropFirst(5) }
        } else if let colon = rest.lastIndex(of: ":"), !rest[..<colon].contains(":") {
            host = rest[..<colon]
            rest = rest[colon...]
        } else {
            host = rest
            rest = ""
        }
        var port = defaultPort
        if !rest.isEmpty {
            guard rest.first == ":", let value = Int(rest.dropFirst()), (1...65535).contains(value) else {
                throw .badPort(String(rest))
            }
            port = value
        }
        var name = String(host)
        if name.hasSuffix(".") { name.removeLast() }
        guard !name.isEmpty, name.utf8.count <= 255,
              name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" || (bracketed && $0 == ":") })
        else { throw .badHost(text) }
        return SMTPDestination(host: name, port: port, mxLookup: !bracketed)
    }

    /// The host field form: `[host]:port` or `domain`.
    public var description: String {
        let base = mxLookup ? host : "[\(host)]"
        return port == 25 ? base : "\(base):\(port)"
    }
}
