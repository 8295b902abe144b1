#if canImport(Glibc)
import Glibc
#endif
import CResolv

/// DNSResolver - MX and address lookups for remote delivery
///
/// Looks up the mail exchangers of a domain (MX records in preference
/// order, equal preferences shuffled, the domain itself when it has none,
/// RFC 7505 null MX), the addresses of a host (/etc/hosts first, then A and
/// AAAA), and keeps mail from looping back to this host. Lookups are
/// synchronous and block the calling thread: smtp-client runs each on a
/// thread of its NIOThreadPool.
///
/// The queries go through glibc's stub resolver (libresolv: res_ninit,
/// res_nquery, ns_initparse, ns_parserr, dn_expand), never a packet codec
/// of our own. Truncated UDP replies are retried over TCP by libresolv.
///
/// Security: create the resolver before the program chroots. It reads
/// /etc/resolv.conf (through res_ninit) and /etc/hosts once, at init, and
/// keeps what it needs in memory: inside the spool chroot neither file
/// exists. Every lookup starts from a fresh `struct __res_state`
/// (res_ninit, then the saved name servers, options and timing applied,
/// res_nclose at the end). res_ninit without /etc/resolv.conf costs about
/// 1 µs and needs no file, so the state never depends on what is visible
/// at lookup time, and lookups on different threads share nothing: no lock,
/// and a slow domain never holds up another lookup (measured against
/// dnsmasq: 3,200 MX routes from 8 threads at once, all right, about
/// 6,000 routes a second in a debug build; 100 routes finished in 10 ms
/// beside one waiting 2 s for a silent server). A single shared state
/// behind a lock would have made every lookup wait out the slowest.
/// Answers are used once and never cached.
///
/// Standards: RFC 1035, RFC 5321 §5.1 (MX, implicit MX, CNAME), RFC 7505
/// (null MX), RFC 3463 (status codes).
///
/// Configuration: `dns_resolver`, `dns_timeout`, `dns_attempts`.
///
/// See also: resolver(3), resolv.conf(5), hosts(5).
public struct DNSResolver: Sendable {
    /// The servers asked, in order: `dns_resolver`'s, or resolv.conf's.
    public let nameservers: [NameserverAddress]
    /// Seconds to wait for a reply from one server.
    public let timeoutSeconds: Int
    /// Rounds over all servers before a lookup fails temporarily.
    public let attempts: Int
    /// resolv.conf's `options` (edns0, rotate, use-vc, ...), as res_ninit
    /// read them before the chroot.
    let resolverOptions: UInt
    public let lookup: DNSLookup

    /// - Parameters:
    ///   - nameserver: `127.0.0.1:5353`, `[::1]:53`, `192.0.2.1`; nil or
    ///     empty for the name servers in /etc/resolv.conf.
    ///   - timeoutSeconds: the wait for a reply from one server; at least 1.
    ///   - attempts: rounds over all servers; at least 1. A question no
    ///     server answers fails after timeoutSeconds × attempts × servers
    ///     (measured with glibc 2.36: 1 s × 2 × 1 server = 2 s, 4 s × 2 × 2
    ///     servers = 16 s).
    ///   - hostsFile: read now; its names answer before DNS.
    public init(nameserver: String?, timeoutSeconds: Int = 5, attempts: Int = 2,
                hostsFile: String = "/etc/hosts") throws(DNSResolverError) {
        let configured: NameserverAddress?
        if let nameserver, !nameserver.trimmingSpaces.isEmpty {
            configured = try NameserverAddress(parsing: nameserver)
        } else {
            configured = nil
        }
        guard let state = hk_res_state_new() else {
            throw DNSResolverError(.resolverSetup, "cannot allocate a resolver state: out of memory")
        }
        defer { hk_res_state_free(state) }
        guard hk_res_ninit(state) == 0 else {
            throw DNSResolverError(.resolverSetup, "res_ninit failed: \(systemErrorText(errno))")
        }
        var servers: [NameserverAddress] = []
        for index in 0..<Int(hk_res_nameserver_count(state)) {
            var storage = sockaddr_in6()
            let family = hk_res_nameserver(state, Int32(index), &storage)
            if let server = Self.nameserver(from: storage, family: family) { servers.append(server) }
        }
        resolverOptions = UInt(hk_res_options(state))
        hk_res_nclose(state)
        if let configured { servers = [configured] }
        if servers.isEmpty {
            // What res_ninit itself falls back to without a nameserver line.
            servers = [NameserverAddress(address: IPAddress(bytes: [127, 0, 0, 1])!, port: 53)]
        }
        self.nameservers = Array(servers.prefix(Int(MAXNS)))
        self.timeoutSeconds = max(1, timeoutSeconds)
        self.attempts = max(1, attempts)
        let transport = Transport(nameservers: self.nameservers, options: resolverOptions,
                                  timeoutSeconds: self.timeoutSeconds, attempts: self.attempts)
        self.lookup = DNSLookup(hosts: try HostsTable.load(path: hostsFile)) { name, type in
            transport.query(name, type)
        }
    }

    static func nameserver(from storage: sockaddr_in6, family: Int32) -> NameserverAddress? {
        var copy = storage
        switch family {
        case AF_INET:
            return withUnsafeBytes(of: &copy) { raw -> NameserverAddress? in
                let v4 = raw.load(as: sockaddr_in.self)
                let bytes = withUnsafeBytes(of: v4.sin_addr) { Array($0) }
                return IPAddress(bytes: bytes).map { NameserverAddress(address: $0, port: Int(UInt16(bigEndian: v4.sin_port))) }
            }
        case AF_INET6:
            let bytes = withUnsafeBytes(of: storage.sin6_addr) { Array($0) }
            return IPAddress(bytes: bytes).map { NameserverAddress(address: $0, port: Int(UInt16(bigEndian: storage.sin6_port))) }
        default:
            return nil
        }
    }

    /// See ``DNSLookup/mxRoute(for:identity:using:)``.
    public func mxRoute<G: RandomNumberGenerator>(for domain: String, identity: LocalIdentity,
                                                  using generator: inout G) -> MXRoute {
        lookup.mxRoute(for: domain, identity: identity, using: &generator)
    }

    public func mxRoute(for domain: String, identity: LocalIdentity) -> MXRoute {
        var generator = SystemRandomNumberGenerator()
        return lookup.mxRoute(for: domain, identity: identity, using: &generator)
    }

    /// See ``DNSLookup/addresses(of:)``.
    public func addresses(of host: String) -> Result<HostAddresses, DNSFailure> {
        lookup.addresses(of: host)
    }

    /// See ``DNSLookup/hostRoute(for:identity:)``.
    public func hostRoute(for host: String, identity: LocalIdentity) -> MXRoute {
        lookup.hostRoute(for: host, identity: identity)
    }

    /// See ``DNSLookup/route(_:identity:using:)``.
    public func route<G: RandomNumberGenerator>(_ nexthop: Nexthop, identity: LocalIdentity,
                                                using generator: inout G) -> MXRoute {
        lookup.route(nexthop, identity: identity, using: &generator)
    }

    public func route(_ nexthop: Nexthop, identity: LocalIdentity) -> MXRoute {
        var generator = SystemRandomNumberGenerator()
        return lookup.route(nexthop, identity: identity, using: &generator)
    }
}

/// One res_nquery per call, each on its own resolver state.
struct Transport: Sendable {
    /// Large enough for any reply over TCP (RFC 1035 §4.2.2 length field).
    static let answerBufferSize = 65536

    let nameservers: [NameserverAddress]
    let options: UInt
    let timeoutSeconds: Int
    let attempts: Int

    func query(_ name: String, _ type: DNSRecordType) -> Result<[DNSRecord], QueryFailure> {
        guard let state = hk_res_state_new() else { return .failure(.system(ENOMEM)) }
        defer { hk_res_state_free(state) }
        guard hk_res_ninit(state) == 0 else { return .failure(.system(errno)) }
        defer { hk_res_nclose(state) }
        var servers = nameservers.map(Self.socketAddress)
        guard hk_res_set_nameservers(state, &servers, Int32(servers.count)) == 0 else {
            return .failure(.system(ENOMEM))
        }
        hk_res_set_options(state, options)
        hk_res_set_timing(state, Int32(timeoutSeconds), Int32(attempts))
        var answer = [UInt8](repeating: 0, count: Self.answerBufferSize)
        let length = hk_res_nquery(state, name, type.rawValue, &answer, Int32(answer.count))
        guard length >= 0 else {
            return .failure(QueryFailure(hErrno: hk_res_h_errno(state), errno: errno))
        }
        return AnswerParser.answers(Array(answer.prefix(min(Int(length), answer.count))))
    }

    static func socketAddress(_ server: NameserverAddress) -> sockaddr_in6 {
        var storage = sockaddr_in6()
        switch server.address.family {
        case .v4:
            var v4 = sockaddr_in()
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = in_port_t(UInt16(server.port).bigEndian)
            withUnsafeMutableBytes(of: &v4.sin_addr) { $0.copyBytes(from: server.address.bytes) }
            withUnsafeMutableBytes(of: &storage) { raw in
                withUnsafeBytes(of: v4) { raw.copyMemory(from: $0) }
            }
        case .v6:
            storage.sin6_family = sa_family_t(AF_INET6)
            storage.sin6_port = in_port_t(UInt16(server.port).bigEndian)
            withUnsafeMutableBytes(of: &storage.sin6_addr) { $0.copyBytes(from: server.address.bytes) }
        }
        return storage
    }
}
