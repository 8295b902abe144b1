/// MX routing and address lookup over a query function: the logic of
/// ``DNSResolver`` without the network, so tests can drive it with canned
/// answers.
public struct DNSLookup: Sendable {
    /// CNAME records followed for one question before giving up (RFC 1034
    /// sets no limit; Postfix stops at 10, BIND at 16; real chains are 1-3).
    public static let maximumCNAMEChain = 8

    /// Sends one question and returns the answer section, or why there is
    /// none.
    public typealias Query = @Sendable (_ name: String, _ type: DNSRecordType) -> Result<[DNSRecord], QueryFailure>

    /// Records of one type at the end of a CNAME chain.
    public struct Answer: Sendable, Equatable {
        public var canonicalName: String
        public var records: [DNSRecord.Data]
    }

    public let hosts: HostsTable
    let query: Query

    public init(hosts: HostsTable, query: @escaping Query) {
        self.hosts = hosts
        self.query = query
    }

    /// The records of `type` for `name`, CNAMEs followed through each
    /// answer and, when the server stopped at an alias, by asking again.
    public func records(_ name: String, _ type: DNSRecordType) -> Result<Answer, QueryFailure> {
        guard DNSName.isQueryable(name) else { return .failure(.invalidName) }
        var chain = CNAMEChain(start: name)
        var current = DNSName.normalized(name)
        while true {
            switch query(current, type) {
            case .failure(let failure):
                return .failure(failure)
            case .success(let answers):
                switch chain.follow(current, type: type, answers: answers) {
                case .found(let canonical, let records):
                    return .success(Answer(canonicalName: canonical, records: records))
                case .askAgain(let target):
                    current = target
                case .noData:
                    return .failure(.noData)
                case .loop:
                    return .failure(.cnameLoop)
                }
            }
        }
    }

    /// A host's addresses: an address literal as it is, a name from the
    /// hosts file, else A then AAAA from DNS (no AAAA query once A says the
    /// name does not exist).
    public func addresses(of host: String) -> Result<HostAddresses, DNSFailure> {
        if let literal = IPAddress(parsing: host) {
            return .success(HostAddresses([literal], source: .literal))
        }
        if let pinned = hosts.addresses(for: host), !pinned.isEmpty {
            return .success(HostAddresses(pinned, source: .hostsFile))
        }
        let name = DNSName.normalized(host)
        let v4 = records(name, .a)
        if case .failure(let failure) = v4, failure == .nameNotFound || failure == .invalidName {
            return .failure(failure.addressFailure(host: name, type: .a))
        }
        let v6 = records(name, .aaaa)
        var found: [IPAddress] = []
        for result in [v4, v6] {
            guard case .success(let answer) = result else { continue }
            for record in answer.records {
                switch record {
                case .a(let address), .aaaa(let address): found.append(address)
                case .mx, .cname, .other: break
                }
            }
        }
        if !found.isEmpty { return .success(HostAddresses(found, source: .dns)) }
        if case .failure(let failure) = v4, failure.isTemporary {
            return .failure(failure.addressFailure(host: name, type: .a))
        }
        if case .failure(let failure) = v6 {
            return .failure(failure.addressFailure(host: name, type: .aaaa))
        }
        return .failure(QueryFailure.noData.addressFailure(host: name, type: .aaaa))
    }

    /// The mail exchangers for a domain (RFC 5321 §5.1, RFC 7505), each
    /// with its addresses, never ourselves or a host less preferred than
    /// us. `generator` orders hosts of equal preference.
    public func mxRoute<G: RandomNumberGenerator>(for domain: String, identity: LocalIdentity,
                                                  using generator: inout G) -> MXRoute {
        let name = DNSName.normalized(domain)
        switch records(name, .mx) {
        case .failure(.noData):
            let host = MXHost(name: name, preference: 0, addresses: addresses(of: name))
            return MXSelection.route(to: host, identity: identity, implicit: true)
        case .failure(let failure):
            return MXRoute(failure.mxFailure(domain: name))
        case .success(let answer):
            switch MXSelection.exchangers(from: answer.records) {
            case .nullMX:
                return .nullMX(domain: name)
            case .list(let exchangers):
                let hosts = MXSelection.order(exchangers, using: &generator).map {
                    MXHost(name: $0.name, preference: $0.preference, addresses: addresses(of: $0.name))
                }
                return MXSelection.route(domain: name, hosts: hosts, identity: identity)
            }
        }
    }

    /// The route to `[host]`: its addresses, no MX lookup.
    public func hostRoute(for host: String, identity: LocalIdentity) -> MXRoute {
        let name = IPAddress(parsing: host) == nil ? DNSName.normalized(host) : host
        let found = MXHost(name: name, preference: 0, addresses: addresses(of: name))
        return MXSelection.route(to: found, identity: identity, implicit: false)
    }

    /// A next hop's route: MX lookup for a domain, address lookup for
    /// `[host]`, nothing for an address literal. `identity` is consulted
    /// only on port 25 (``Nexthop/checksForLoops``).
    public func route<G: RandomNumberGenerator>(_ nexthop: Nexthop, identity: LocalIdentity,
                                                using generator: inout G) -> MXRoute {
        let own = nexthop.checksForLoops ? identity : .none
        if nexthop.usesMX {
            return mxRoute(for: nexthop.host, identity: own, using: &generator)
        }
        return hostRoute(for: nexthop.host, identity: own)
    }
}
