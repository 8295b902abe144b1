import DNSResolver
import MailCore
import Testing

@Suite("MX routing and address lookup over a zone in memory")
struct DNSLookupTests {
    func zone() -> FakeZone {
        let zone = FakeZone()
        zone.add("example.org", .mx(preference: 20, exchange: "mx2.example.org"))
        zone.add("example.org", .mx(preference: 10, exchange: "mx1.example.org"))
        zone.add("mx1.example.org", .a(ip("198.51.100.1")))
        zone.add("mx1.example.org", .aaaa(ip("2001:db8::1")))
        zone.add("mx2.example.org", .aaaa(ip("2001:db8::2")))
        zone.add("plain.example.org", .a(ip("198.51.100.3")))
        zone.add("alias.example.org", .cname("example.org"))
        zone.add("www.example.org", .cname("plain.example.org"))
        zone.add("null.example.org", .mx(preference: 0, exchange: ""))
        zone.add("text.example.org", .other(type: 16))
        return zone
    }

    @Test("MX hosts by preference, each with IPv4 then IPv6 addresses")
    func mx() {
        var generator = SplitMix64(seed: 7)
        let route = zone().lookup.mxRoute(for: "Example.ORG.", identity: .none, using: &generator)
        #expect(route == .hosts([host("mx1.example.org", 10, ["198.51.100.1", "2001:db8::1"]),
                                 host("mx2.example.org", 20, ["2001:db8::2"])]))
    }

    @Test("no MX records: the domain itself, through a CNAME too")
    func implicit() {
        var generator = SplitMix64(seed: 7)
        let lookup = zone().lookup
        #expect(lookup.mxRoute(for: "plain.example.org", identity: .none, using: &generator)
                == .implicit(host("plain.example.org", 0, ["198.51.100.3"])))
        #expect(lookup.mxRoute(for: "www.example.org", identity: .none, using: &generator)
                == .implicit(host("www.example.org", 0, ["198.51.100.3"])))
    }

    @Test("neither MX nor address is permanent; NXDOMAIN bounces; SERVFAIL defers; null MX")
    func failures() {
        var generator = SplitMix64(seed: 7)
        let zone = zone()
        zone.failures["servfail.example.org"] = .tryAgain
        let lookup = zone.lookup
        #expect(lookup.mxRoute(for: "text.example.org", identity: .none, using: &generator) == .permanent(EnhancedStatusCode(5, 4, 4),
                "Host or domain name not found. Name service error for name=text.example.org type=AAAA: Host found but no data record of requested type"))
        #expect(lookup.mxRoute(for: "nx.example.org", identity: .none, using: &generator).failure?.status == EnhancedStatusCode(5, 1, 2))
        #expect(lookup.mxRoute(for: "servfail.example.org", identity: .none, using: &generator) == .temporary(EnhancedStatusCode(4, 4, 3),
                "Host or domain name not found. Name service error for name=servfail.example.org type=MX: Host not found, try again"))
        #expect(lookup.mxRoute(for: "null.example.org", identity: .none, using: &generator) == .nullMX(domain: "null.example.org"))
        #expect(lookup.mxRoute(for: "bad..name", identity: .none, using: &generator).failure?.status == EnhancedStatusCode(5, 1, 2))
    }

    @Test("a CNAME the server did not chase is asked for again")
    func unchasedCNAME() {
        var generator = SplitMix64(seed: 7)
        let zone = zone()
        zone.chasesCNAMEs = false
        let route = zone.lookup.mxRoute(for: "alias.example.org", identity: .none, using: &generator)
        #expect(route.hosts.map(\.name) == ["mx1.example.org", "mx2.example.org"])
        #expect(zone.questions.prefix(2) == ["alias.example.org MX", "example.org MX"])
    }

    @Test("a CNAME loop, within one answer or across questions, defers", arguments: [true, false])
    func cnameLoop(chases: Bool) {
        var generator = SplitMix64(seed: 7)
        let zone = zone()
        zone.chasesCNAMEs = chases
        zone.add("loop1.example.org", .cname("loop2.example.org"))
        zone.add("loop2.example.org", .cname("LOOP1.example.org."))
        #expect(zone.lookup.records("loop1.example.org", .mx) == .failure(.cnameLoop))
        #expect(zone.lookup.mxRoute(for: "loop1.example.org", identity: .none, using: &generator).failure?.isTemporary == true)
    }

    @Test("a chain longer than the limit is a loop too")
    func longChain() {
        let zone = zone()
        for step in 0...DNSLookup.maximumCNAMEChain { zone.add("c\(step).example.org", .cname("c\(step + 1).example.org")) }
        zone.add("c\(DNSLookup.maximumCNAMEChain + 1).example.org", .a(ip("198.51.100.9")))
        #expect(zone.lookup.records("c0.example.org", .a) == .failure(.cnameLoop))
        #expect(zone.lookup.records("c1.example.org", .a).map(\.canonicalName) == .success("c9.example.org"))
    }

    @Test("addresses: literals need no lookup, the hosts file answers first, NXDOMAIN on A skips AAAA")
    func addresses() {
        let zone = zone()
        zone.add("pinned.example.org", .a(ip("198.51.100.99")))
        let lookup = zone.lookup(hosts: HostsTable(parsing: "::1 pinned.example.org\n192.0.2.7 pinned.example.org\n"))
        #expect(lookup.addresses(of: "IPv6:2001:db8::5") == .success(HostAddresses([ip("2001:db8::5")], source: .literal)))
        #expect(lookup.addresses(of: "Pinned.Example.org") == .success(HostAddresses([ip("192.0.2.7"), ip("::1")], source: .hostsFile)))
        #expect(zone.questions.isEmpty)
        #expect(lookup.addresses(of: "nx.example.org") == .failure(DNSFailure(EnhancedStatusCode(5, 4, 4),
                "Host or domain name not found. Name service error for name=nx.example.org type=A: Host not found")))
        #expect(zone.questions == ["nx.example.org A"])
    }

    @Test("next hops: [host] skips MX; loops are looked for on port 25 only")
    func nexthops() throws {
        var generator = SplitMix64(seed: 7)
        let lookup = zone().lookup
        let me = LocalIdentity(names: [], addresses: [ip("198.51.100.3")])
        #expect(lookup.route(try Nexthop(parsing: "[plain.example.org]"), identity: me, using: &generator)
                == .permanent(EnhancedStatusCode(5, 4, 6), "mail for plain.example.org loops back to myself"))
        #expect(lookup.route(try Nexthop(parsing: "[plain.example.org]:10025"), identity: me, using: &generator)
                == .hosts([host("plain.example.org", 0, ["198.51.100.3"])]))
        #expect(lookup.route(try Nexthop(parsing: "[198.51.100.3]:2525"), identity: me, using: &generator).hosts.first?.addresses
                == .success(HostAddresses([ip("198.51.100.3")], source: .literal)))
    }
}
