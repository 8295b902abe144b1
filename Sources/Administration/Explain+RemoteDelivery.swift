import ArgumentParser
import DNSResolver
import HikyakuConfig
import HikyakuSystem
import SendmailRules

extension Explain {
    /// sendmail's SMTP mailers: a route through any of them is delivered by
    /// smtp-client to the triple's host (mailertable's `relay:` is how
    /// Debian's SMART_HOST spells a smart host).
    static let smtpMailers: Set<String> = ["smtp", "esmtp", "smtp8", "dsmtp", "relay"]

    /// For a route through an SMTP mailer: the servers smtp-client would
    /// try, from a live lookup through `dns_resolver`, or the status it
    /// would give the recipient.
    func explainRemoteDelivery(_ triple: MailerTriple, config: Configuration) throws {
        guard Self.smtpMailers.contains(triple.mailer), let host = triple.host else { return }
        print("")
        let nexthop: Nexthop
        do {
            nexthop = try Nexthop(parsing: host)
        } catch {
            print("remote delivery: \(error)")
            throw ExitCode(1)
        }
        let resolver: DNSResolver
        let identity: LocalIdentity
        do {
            resolver = try DNSResolver.configured(config)
            identity = try LocalIdentity.configured(config)
        } catch {
            throw ValidationError("\(error)")
        }
        let servers = resolver.nameservers.map(\.description).joined(separator: ", ")
        let how = nexthop.usesMX ? "MX lookup" : "no MX lookup"
        print("remote delivery to \(nexthop) (\(how), name servers \(servers)):")
        let route = resolver.route(nexthop, identity: identity)
        for host in route.hosts {
            let label: String
            switch route {
            case .implicit: label = "no MX, the domain itself: \(host.name)"
            case .hosts where nexthop.usesMX: label = "MX \(host.preference) \(host.name)"
            default: label = "host \(host.name)"
            }
            switch host.addresses {
            case .success(let found):
                let list = found.addresses.map(\.description).joined(separator: ", ")
                let note: String
                switch found.source {
                case .dns: note = ""
                case .hostsFile: note = " (hosts file)"
                case .literal: note = " (address literal)"
                }
                print("  \(label): \(list)\(note)")
            case .failure(let failure):
                print("  \(label): no address: \(failure)")
            }
        }
        if let failure = route.failure {
            print("  \(failure.outcome.logWord): \(failure)")
        }
    }
}
