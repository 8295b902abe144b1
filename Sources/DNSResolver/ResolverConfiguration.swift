import HikyakuConfig
import HikyakuSystem

extension DNSResolver {
    /// The resolver a configuration asks for (`dns_resolver`,
    /// `dns_timeout`, `dns_attempts`). Reads /etc/resolv.conf and /etc/hosts:
    /// call it before a chroot.
    public static func configured(_ config: Configuration) throws(ConfigError) -> DNSResolver {
        do {
            return try DNSResolver(nameserver: config.string("dns_resolver"),
                                   timeoutSeconds: config.seconds("dns_timeout"),
                                   attempts: config.integer("dns_attempts"))
        } catch {
            let key = error.code == .invalidNameserver ? "dns_resolver" : nil
            throw ConfigError(file: config.path, line: key.map { config.line(of: $0) } ?? 0, key: key, reason: error.message)
        }
    }
}

extension LocalIdentity {
    /// Ourselves, as smtp-client sees it when it looks for loops:
    /// `myhostname`, and the addresses smtpd listens on (every interface's
    /// for a wildcard listener). Lists interfaces: call it before a chroot.
    public static func configured(_ config: Configuration) throws(ConfigError) -> LocalIdentity {
        var addresses: [IPAddress] = []
        for spec in config.list("smtpd_listen") {
            guard let (host, _) = Sockets.parseHostPort(spec) else { continue }
            if host == "0.0.0.0" || host == "::" {
                do {
                    addresses += try LocalInterfaces.addresses()
                } catch {
                    throw ConfigError(file: config.path, line: config.line(of: "smtpd_listen"), key: "smtpd_listen",
                                      reason: "\(spec): \(error)")
                }
            } else if let address = IPAddress(parsing: host) {
                addresses.append(address)
            }
        }
        return LocalIdentity(names: [config.string("myhostname")], addresses: addresses)
    }
}

extension Nexthop {
    /// `smart_host`, checked: nil when it is empty, an error naming the line
    /// when it is not a host field (`[relay.example.net]:587`,
    /// `relay.example.net`); a sendmail mailer prefix such as `esmtp:` is
    /// not part of it.
    public static func smartHost(_ config: Configuration) throws(ConfigError) -> Nexthop? {
        let text = config.string("smart_host")
        guard !text.isEmpty else { return nil }
        do {
            return try Nexthop(parsing: text)
        } catch {
            throw ConfigError(file: config.path, line: config.line(of: "smart_host"), key: "smart_host",
                              reason: "\(error.message) (write [host]:port or host, without a mailer name)")
        }
    }
}
