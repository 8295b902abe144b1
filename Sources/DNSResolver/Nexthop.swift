/// Where a route sends mail, from the host part of a mailer triple
/// (mailertable's `smtp:[mail.example.org]`, `esmtp:example.org:2525`, or
/// the recipient's domain): a domain whose MX records are looked up, or,
/// in brackets, a host whose addresses are used as they are.
public struct Nexthop: Sendable, Equatable, CustomStringConvertible {
    public static let smtpPort = 25

    /// The domain or host name without brackets, or an address literal
    /// (`192.0.2.1`, `IPv6:2001:db8::1`).
    public var host: String
    public var port: Int
    /// false for `[host]` and for address literals: no MX lookup.
    public var usesMX: Bool

    public init(host: String, port: Int = Nexthop.smtpPort, usesMX: Bool) {
        self.host = host
        self.port = port
        self.usesMX = usesMX && IPAddress(parsing: host) == nil
    }

    /// `example.org`, `example.org:2525`, `[mail.example.org]`,
    /// `[mail.example.org]:2525`, `[192.0.2.1]`, `[IPv6:2001:db8::1]:2525`.
    public init(parsing text: String) throws(DNSResolverError) {
        func invalid(_ why: String) -> DNSResolverError {
            DNSResolverError(.invalidNexthop, "next hop '\(text)': \(why)")
        }
        var host: Substring
        var portText: Substring? = nil
        let bracketed = text.hasPrefix("[")
        if bracketed {
            guard let close = text.firstIndex(of: "]") else { throw invalid("no closing ]") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw invalid("text after ]") }
                portText = rest.dropFirst()
            }
        } else if IPAddress(parsing: text) != nil {
            host = Substring(text)
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            host = Substring(text)
        }
        guard !host.isEmpty else { throw invalid("no host") }
        var port = Nexthop.smtpPort
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw invalid("'\(portText)' is not a port number from 1 to 65535")
            }
            port = value
        }
        let name = IPAddress(parsing: host) == nil ? DNSName.normalized(host) : String(host)
        guard IPAddress(parsing: name) != nil || DNSName.isQueryable(name) else {
            throw invalid("'\(host)' is neither a host name nor an address")
        }
        self.init(host: name, port: port, usesMX: !bracketed)
    }

    /// Postfix looks for itself among the servers only when the port is 25:
    /// a content filter at `[127.0.0.1]:10025` is not a loop.
    public var checksForLoops: Bool { port == Nexthop.smtpPort }

    public var description: String {
        let base = usesMX ? host : "[\(host)]"
        return port == Nexthop.smtpPort ? base : "\(base):\(port)"
    }
}
