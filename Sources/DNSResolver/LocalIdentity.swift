/// This mail system's own names and addresses, which a route must never
/// lead back to. Built before the chroot (interface addresses come from
/// getifaddrs, see ``LocalInterfaces``).
public struct LocalIdentity: Sendable, Equatable {
    /// Normalised host names (`myhostname`).
    public var names: Set<String>
    /// Addresses smtpd listens on, IPv4-mapped ones unmapped.
    public var addresses: Set<IPAddress>

    public init(names: some Sequence<String>, addresses: some Sequence<IPAddress>) {
        self.names = Set(names.map { DNSName.normalized($0) }.filter { !$0.isEmpty })
        self.addresses = Set(addresses.map(\.unmapped))
    }

    /// No identity: nothing is recognised as ourselves (a next hop on a port
    /// other than 25, or a caller that checks loops itself).
    public static let none = LocalIdentity(names: [], addresses: [])

    public var isEmpty: Bool { names.isEmpty && addresses.isEmpty }

    /// Whether the host is us, by its name (RFC 5321 §5.1 compares names)
    /// or by any of its addresses (as Postfix's smtp_find_self, which also
    /// catches an MX name behind which our address hides).
    public func isSelf(_ host: MXHost) -> Bool {
        if names.contains(DNSName.normalized(host.name)) { return true }
        return host.usableAddresses.contains { addresses.contains($0.unmapped) }
    }
}
