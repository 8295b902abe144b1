import DNSResolver
import HikyakuConfig
import MailCore

/// Turns a route's host field into servers to try, through the resolver
/// made before the chroot (MX records, addresses, loop checks).
enum RouteResolution {
    static func makeResolver(_ configuration: Configuration) throws -> RouteResolver {
        let resolver = try DNSResolver.configured(configuration)
        let identity = try LocalIdentity.configured(configuration)
        return { nexthop in
            let route = resolver.route(nexthop, identity: identity)
            if let failure = route.failure { return .failed(failure.outcome) }
            return .hosts(route.hosts.map { RouteHost(name: $0.name, addresses: $0.usableAddresses.map(\.description)) })
        }
    }
}
