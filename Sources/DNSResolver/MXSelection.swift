import MailCore

/// One MX record's target.
public struct MXExchanger: Sendable, Equatable {
    /// Normalised; `""` is the root (a null MX).
    public var name: String
    public var preference: Int

    public init(name: String, preference: Int) {
        self.name = DNSName.normalized(name)
        self.preference = preference
    }
}

/// The pure decisions of MX routing: null MX, ordering, and never
/// delivering to ourselves.
public enum MXSelection {
    public enum Exchangers: Sendable, Equatable {
        /// RFC 7505: the domain's MX set is the single record `0 .`.
        case nullMX
        case list([MXExchanger])
    }

    /// Reads the MX records of an answer. A lone MX for the root is a null
    /// MX whatever its preference (RFC 7505 §3 says 0, and a sender learns
    /// nothing more from another number). A root MX beside real ones
    /// breaks RFC 7505 §3 and names no server, so it is dropped and the
    /// others are used.
    public static func exchangers(from records: [DNSRecord.Data]) -> Exchangers {
        let all = records.compactMap { record -> MXExchanger? in
            guard case .mx(let preference, let exchange) = record else { return nil }
            return MXExchanger(name: exchange, preference: preference)
        }
        let real = all.filter { !$0.name.isEmpty }
        return real.isEmpty ? .nullMX : .list(real)
    }

    /// RFC 5321 §5.1: lowest preference first, and hosts of equal
    /// preference in random order, so that senders spread their load. A
    /// name listed twice keeps its lowest preference.
    public static func order<G: RandomNumberGenerator>(_ exchangers: [MXExchanger], using generator: inout G) -> [MXExchanger] {
        var best: [String: Int] = [:]
        var firstSeen: [String] = []
        for exchanger in exchangers {
            if let known = best[exchanger.name] {
                best[exchanger.name] = min(known, exchanger.preference)
            } else {
                best[exchanger.name] = exchanger.preference
                firstSeen.append(exchanger.name)
            }
        }
        var groups: [Int: [String]] = [:]
        for name in firstSeen { groups[best[name]!, default: []].append(name) }
        var ordered: [MXExchanger] = []
        for preference in groups.keys.sorted() {
            var names = groups[preference]!
            names.shuffle(using: &generator)
            ordered += names.map { MXExchanger(name: $0, preference: preference) }
        }
        return ordered
    }

    /// The route for an ordered list of MX hosts with their addresses:
    /// when one of them is ourselves, every host of its preference or worse
    /// is dropped (Postfix's smtp_truncate_self); with nothing better left
    /// the mail loops (5.4.6), unless better hosts exist whose addresses
    /// could not be found (4.4.4, as Postfix: we are a backup MX that
    /// cannot see the primary). When no host has an address the failure is
    /// the first temporary host error, else the last permanent one (a soft
    /// error dominates, as in Postfix's smtp_addr_one).
    public static func route(domain: String, hosts: [MXHost], identity: LocalIdentity) -> MXRoute {
        var candidates = hosts
        if let ours = hosts.first(where: identity.isSelf) {
            let better = hosts.filter { $0.preference < ours.preference }
            if !better.contains(where: { !$0.usableAddresses.isEmpty }) {
                if better.isEmpty {
                    return .permanent(EnhancedStatusCode(5, 4, 6), "mail for \(domain) loops back to myself")
                }
                return .temporary(EnhancedStatusCode(4, 4, 4), "unable to find primary relay for \(domain)")
            }
            candidates = better
        }
        if candidates.contains(where: { !$0.usableAddresses.isEmpty }) {
            return .hosts(candidates)
        }
        let failures = candidates.compactMap { host -> DNSFailure? in
            if case .failure(let failure) = host.addresses { return failure }
            return nil
        }
        guard let chosen = failures.first(where: \.isTemporary) ?? failures.last else {
            return .permanent(EnhancedStatusCode(5, 4, 4), "no mail exchanger for \(domain) has an address")
        }
        return MXRoute(chosen)
    }

    /// The route to one host: an implicit MX (the domain itself) or the
    /// `[host]` of a route. Ourselves is a loop (5.4.6).
    public static func route(to host: MXHost, identity: LocalIdentity, implicit: Bool) -> MXRoute {
        if identity.isSelf(host) {
            return .permanent(EnhancedStatusCode(5, 4, 6), "mail for \(host.name) loops back to myself")
        }
        switch host.addresses {
        case .failure(let failure):
            return MXRoute(failure)
        case .success(let found) where found.addresses.isEmpty:
            return .permanent(EnhancedStatusCode(5, 4, 4), "\(host.name): host has no address")
        case .success:
            return implicit ? .implicit(host) : .hosts([host])
        }
    }
}
