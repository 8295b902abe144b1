/// A DNS server to ask: `127.0.0.1:5353`, `[::1]:53`, `192.0.2.1` or `::1`
/// (port 53 when none is given), as `dns_resolver` spells it.
public struct NameserverAddress: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: Int

    public init(address: IPAddress, port: Int = 53) {
        self.address = address
        self.port = port
    }

    public init(parsing text: String) throws(DNSResolverError) {
        let spec = text.trimmingSpaces
        func invalid(_ why: String) -> DNSResolverError {
            DNSResolverError(.invalidNameserver,
                             "\(why) in '\(text)'; expected an address like 127.0.0.1:5353, [::1]:53 or 192.0.2.1")
        }
        var host = Substring(spec)
        var portText: Substring? = nil
        if spec.hasPrefix("[") {
            guard let close = spec.firstIndex(of: "]") else { throw invalid("no closing ]") }
            host = spec[spec.index(after: spec.startIndex)..<close]
            let rest = spec[spec.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw invalid("text after ]") }
                portText = rest.dropFirst()
            }
        } else if spec.filter({ $0 == ":" }).count == 1, let colon = spec.firstIndex(of: ":") {
            host = spec[..<colon]
            portText = spec[spec.index(after: colon)...]
        }
        guard let address = IPAddress(parsing: host) else {
            throw invalid(host.isEmpty ? "no address" : "'\(host)' is not a numeric IPv4 or IPv6 address")
        }
        var port = 53
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw invalid("'\(portText)' is not a port number from 1 to 65535")
            }
            port = value
        }
        self.init(address: address, port: port)
    }

    public var description: String {
        address.family == .v4 ? "\(address):\(port)" : "[\(address)]:\(port)"
    }
}

extension String {
    var trimmingSpaces: String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
