import MailCore

/// Where a host's addresses came from.
public enum AddressSource: String, Sendable, Equatable {
    /// The name was an address literal: nothing was looked up.
    case literal
    /// /etc/hosts, read before the chroot.
    case hostsFile = "hosts file"
    /// A and AAAA queries.
    case dns
}

/// A host's addresses: IPv4 first, then IPv6, each in the order received.
public struct HostAddresses: Sendable, Equatable {
    public var addresses: [IPAddress]
    public var source: AddressSource

    public init(_ addresses: [IPAddress], source: AddressSource) {
        self.addresses = addresses.filter { $0.family == .v4 } + addresses.filter { $0.family == .v6 }
        self.source = source
    }
}

/// One mail exchanger, with the result of looking up its addresses.
public struct MXHost: Sendable, Equatable {
    /// Normalised host name, or the address literal a route named.
    public var name: String
    public var preference: Int
    public var addresses: Result<HostAddresses, DNSFailure>

    public init(name: String, preference: Int, addresses: Result<HostAddresses, DNSFailure>) {
        self.name = name
        self.preference = preference
        self.addresses = addresses
    }

    /// The addresses to connect to; empty when the lookup failed.
    public var usableAddresses: [IPAddress] {
        (try? addresses.get())?.addresses ?? []
    }
}

/// The servers mail for a next hop goes to, or why there are none.
public enum MXRoute: Sendable, Equatable {
    /// MX hosts in the order to try them: by preference, equal preferences
    /// shuffled (RFC 5321 §5.1), those at or after ourselves removed; or the
    /// one `[host]` of a route that names it. At least one host has
    /// addresses; a host whose lookup failed stays in the list, so its
    /// error can be shown and logged.
    case hosts([MXHost])
    /// The domain has no MX records: it is its own mail exchanger with
    /// preference 0 (RFC 5321 §5.1).
    case implicit(MXHost)
    /// The domain's only MX is "." (RFC 7505): it accepts no mail.
    case nullMX(domain: String)
    /// Return the message: NXDOMAIN, no MX and no address, a loop.
    case permanent(EnhancedStatusCode, String)
    /// Try again later: SERVFAIL, timeouts, unreachable servers.
    case temporary(EnhancedStatusCode, String)

    public static let nullMXStatus = EnhancedStatusCode(5, 1, 10)

    init(_ failure: DNSFailure) {
        self = failure.isTemporary ? .temporary(failure.status, failure.text) : .permanent(failure.status, failure.text)
    }

    /// The hosts to try, in order; empty for a failure.
    public var hosts: [MXHost] {
        switch self {
        case .hosts(let hosts): return hosts
        case .implicit(let host): return [host]
        case .nullMX, .permanent, .temporary: return []
        }
    }

    /// nil when there are hosts to try; otherwise what becomes of the
    /// recipient (bounced for 5.x.x, deferred for 4.x.x).
    public var failure: DNSFailure? {
        switch self {
        case .hosts, .implicit: return nil
        case .nullMX(let domain):
            return DNSFailure(Self.nullMXStatus, "Domain \(domain) does not accept mail (nullMX)")
        case .permanent(let status, let text), .temporary(let status, let text):
            return DNSFailure(status, text)
        }
    }
}
