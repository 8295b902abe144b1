import DNSResolver
import Testing

@Suite("addresses, name servers, next hops and hosts files")
struct ParsingTests {
    @Test("IP addresses and RFC 5321 literals")
    func addresses() {
        #expect(IPAddress(parsing: "192.0.2.1")?.bytes == [192, 0, 2, 1])
        #expect(IPAddress(parsing: "IPv6:2001:DB8::1")?.description == "2001:db8::1")
        #expect(IPAddress(parsing: "ipv6:192.0.2.1") == nil)
        #expect(IPAddress(parsing: "2001:db8::1")?.literal == "IPv6:2001:db8::1")
        #expect(IPAddress(parsing: "::ffff:192.0.2.1")?.unmapped == IPAddress(parsing: "192.0.2.1"))
        for bad in ["", "example.org", "192.0.2", "1.2.3.4.5", "256.1.1.1", "fe80::1%eth0"] {
            #expect(IPAddress(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test("dns_resolver values", arguments: [
        ("127.0.0.1:5353", "127.0.0.1:5353"), ("[::1]:53", "[::1]:53"), ("192.0.2.1", "192.0.2.1:53"),
        ("::1", "[::1]:53"), (" [2001:db8::53] ", "[2001:db8::53]:53"),
    ])
    func nameservers(text: String, expected: String) throws {
        #expect(try NameserverAddress(parsing: text).description == expected)
    }

    @Test("bad dns_resolver values say what is wrong", arguments: [
        ("localhost:53", "'localhost' is not a numeric IPv4 or IPv6 address"), ("127.0.0.1:0", "'0' is not a port number"),
        ("[::1", "no closing ]"), ("[::1]x", "text after ]"), (":53", "no address"),
    ])
    func badNameservers(text: String, reason: String) {
        #expect { try NameserverAddress(parsing: text) } throws: { error in
            guard let error = error as? DNSResolverError else { return false }
            return error.code == .invalidNameserver && error.message.contains(reason)
        }
    }

    @Test("next hops from a mailer triple's host")
    func nexthops() throws {
        #expect(try Nexthop(parsing: "Example.ORG") == Nexthop(host: "example.org", usesMX: true))
        #expect(try Nexthop(parsing: "example.org:2525") == Nexthop(host: "example.org", port: 2525, usesMX: true))
        #expect(try Nexthop(parsing: "[mail.example.org]") == Nexthop(host: "mail.example.org", usesMX: false))
        #expect(try Nexthop(parsing: "[IPv6:2001:db8::1]:2525") == Nexthop(host: "IPv6:2001:db8::1", port: 2525, usesMX: false))
        #expect(try Nexthop(parsing: "192.0.2.1").usesMX == false)
        #expect(try Nexthop(parsing: "[192.0.2.1]").description == "[192.0.2.1]")
        #expect(try Nexthop(parsing: "example.org:2525").description == "example.org:2525")
        for bad in ["[]", "[x", "example.org:0", "a..b", ":25"] {
            #expect(throws: DNSResolverError.self, "\(bad)") { try Nexthop(parsing: bad) }
        }
    }

    @Test("hosts(5): comments, aliases, IPv4 before IPv6, bad lines skipped")
    func hostsFile() {
        let table = HostsTable(parsing: """
            # static table
            ::1       localhost ip6-localhost
            127.0.0.1 localhost   # loopback
            bogus     broken.example
            192.0.2.10\tpinned.example.org pinned
            """)
        #expect(table.addresses(for: "LOCALHOST.") == [ip("127.0.0.1"), ip("::1")])
        #expect(table.addresses(for: "pinned") == [ip("192.0.2.10")])
        #expect(table.addresses(for: "broken.example") == nil)
        #expect(table.addresses(for: "loopback") == nil)
    }
}
