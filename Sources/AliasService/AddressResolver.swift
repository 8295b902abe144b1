import HikyakuIPC
import MailCore

/// Decides what a recipient address is: a local user or alias, an unknown
/// local name, or a remote address. Pure: the tables and the passwd lookup
/// are given to it.
public struct AddressResolver: Sendable {
    public var domains: LocalDomains
    public var aliases: AliasFile
    public var userExists: @Sendable (String) -> Bool

    public init(domains: LocalDomains, aliases: AliasFile, userExists: @escaping @Sendable (String) -> Bool) {
        self.domains = domains
        self.aliases = aliases
        self.userExists = userExists
    }

    public func resolve(_ text: String) -> AliasProtocol.Resolution {
        let address: MailAddress
        do {
            address = try MailAddress.parseMailbox(Substring(text))
        } catch {
            return AliasProtocol.Resolution(routeClass: .unknownLocal)
        }
        if let domain = address.domain, !isLocal(domain) {
            return AliasProtocol.Resolution(routeClass: .remote, nexthop: domain.asciiLowercased())
        }
        let user = address.localPartKey
        // RFC 5321 section 4.5.1: postmaster is always accepted.
        if user == "postmaster" || aliases.lookup(user) != nil || userExists(user) {
            return AliasProtocol.Resolution(routeClass: .local, localUser: user)
        }
        return AliasProtocol.Resolution(routeClass: .unknownLocal, localUser: user)
    }

    func isLocal(_ domain: String) -> Bool {
        if domains.contains(domain) { return true }
        // Our own address literals: [127.0.0.1] and [IPv6:::1] at least.
        let lowered = domain.asciiLowercased()
        return lowered == "[127.0.0.1]" || lowered == "[ipv6:::1]"
    }
}
