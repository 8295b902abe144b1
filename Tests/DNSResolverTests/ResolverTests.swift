#if canImport(Glibc)
import Glibc
#endif
import DNSResolver
import MailCore
import Testing

@Suite("the libresolv resolver, without a DNS server")
struct ResolverTests {
    @Test("a given name server replaces resolv.conf's; the hosts file is read at init")
    func setup() throws {
        let path = "/tmp/hikyaku-dns-hosts-\(getpid())"
        #expect(FileManagerless.write(path, "198.51.100.77 pinned.test\n"))
        defer { unlink(path) }
        let resolver = try DNSResolver(nameserver: "[::1]:5353", timeoutSeconds: 0, attempts: 0, hostsFile: path)
        #expect(resolver.nameservers.map(\.description) == ["[::1]:5353"])
        #expect(resolver.timeoutSeconds == 1 && resolver.attempts == 1)
        #expect(resolver.addresses(of: "pinned.test") == .success(HostAddresses([ip("198.51.100.77")], source: .hostsFile)))
        #expect(throws: DNSResolverError.self) { try DNSResolver(nameserver: "dns.example", hostsFile: path) }
        #expect(try DNSResolver(nameserver: nil, hostsFile: "/nonexistent/hosts").nameservers.isEmpty == false)
    }

    @Test("a name server that is not there defers the lookup with 4.4.3")
    func unreachable() throws {
        // A bound UDP socket that never answers, so the query must time out
        // (and no other program can be given the port meanwhile).
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let resolver = try DNSResolver(nameserver: "127.0.0.1:\(port)", timeoutSeconds: 1, attempts: 1, hostsFile: "/nonexistent")
        let route = resolver.mxRoute(for: "example.test", identity: .none)
        #expect(route == .temporary(EnhancedStatusCode(4, 4, 3),
                "Host or domain name not found. Name service error for name=example.test type=MX: Host not found, try again"))
    }
}

/// A file write without Foundation.
enum FileManagerless {
    static func write(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return Glibc.write(fd, bytes, bytes.count) == bytes.count
    }
}
