/// A resolver that cannot be set up: the configuration or the system's
/// files are wrong. Lookups themselves never throw; they answer with a
/// ``DNSFailure``.
public struct DNSResolverError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// `dns_resolver` is not an address with an optional port.
        case invalidNameserver
        /// res_ninit failed (out of memory).
        case resolverSetup
        /// /etc/hosts exists but cannot be read.
        case hostsFile
        /// A next hop that is not `host`, `host:port`, `[host]` or `[host]:port`.
        case invalidNexthop
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
