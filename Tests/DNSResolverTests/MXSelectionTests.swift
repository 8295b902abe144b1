import DNSResolver
import MailCore
import Testing

@Suite("MX selection: null MX, order, loops")
struct MXSelectionTests {
    @Test("a lone MX for the root is a null MX; beside real ones it is dropped")
    func nullMX() {
        #expect(MXSelection.exchangers(from: [.mx(preference: 0, exchange: "")]) == .nullMX)
        #expect(MXSelection.exchangers(from: [.mx(preference: 0, exchange: "."), .mx(preference: 0, exchange: "")]) == .nullMX)
        #expect(MXSelection.exchangers(from: [.mx(preference: 0, exchange: ""), .mx(preference: 10, exchange: "MX.Example.org.")])
                == .list([MXExchanger(name: "mx.example.org", preference: 10)]))
    }

    @Test("lowest preference first; a name listed twice keeps its lowest preference")
    func order() {
        var generator = SplitMix64(seed: 1)
        let ordered = MXSelection.order([MXExchanger(name: "c", preference: 30), MXExchanger(name: "a", preference: 10),
                                         MXExchanger(name: "b", preference: 20), MXExchanger(name: "c", preference: 5)],
                                        using: &generator)
        #expect(ordered == [MXExchanger(name: "c", preference: 5), MXExchanger(name: "a", preference: 10),
                            MXExchanger(name: "b", preference: 20)])
    }

    @Test("equal preferences come in every order over many lookups, and only among themselves")
    func shuffle() {
        let input = [MXExchanger(name: "first", preference: 5), MXExchanger(name: "x", preference: 10),
                     MXExchanger(name: "y", preference: 10), MXExchanger(name: "z", preference: 10),
                     MXExchanger(name: "last", preference: 20)]
        var generator = SplitMix64(seed: 42)
        var orders: Set<[String]> = []
        for _ in 0..<200 {
            let names = MXSelection.order(input, using: &generator).map(\.name)
            #expect(names.first == "first" && names.last == "last")
            orders.insert(Array(names[1...3]))
        }
        #expect(orders.count == 6)
        var again = SplitMix64(seed: 42)
        var replay = SplitMix64(seed: 42)
        #expect(MXSelection.order(input, using: &again) == MXSelection.order(input, using: &replay))
    }

    let me = LocalIdentity(names: ["mail.example.test"], addresses: [ip("192.0.2.25"), ip("2001:db8::25")])

    @Test("ourselves as a backup MX: we and every host as bad or worse are dropped")
    func backup() {
        let hosts = [host("primary.example.org", 10, ["198.51.100.1"]), host("backup.example.org", 20, ["192.0.2.25"]),
                     host("peer.example.org", 20, ["198.51.100.3"]), host("last.example.org", 30, ["198.51.100.4"])]
        #expect(MXSelection.route(domain: "example.org", hosts: hosts, identity: me) == .hosts([hosts[0]]))
    }

    @Test("ourselves as the best MX, by address (IPv4-mapped too) or by name, is a loop: 5.4.6")
    func loop() {
        for ours in [host("mx.example.org", 10, ["::ffff:192.0.2.25"]), host("MAIL.example.test.", 10, ["198.51.100.9"]),
                     host("mx6.example.org", 10, ["2001:db8::25"])] {
            let route = MXSelection.route(domain: "example.org", hosts: [ours, host("other.example.org", 20, ["198.51.100.2"])], identity: me)
            #expect(route == .permanent(EnhancedStatusCode(5, 4, 6), "mail for example.org loops back to myself"))
        }
    }

    @Test("a backup MX that cannot find the primary's address defers with 4.4.4")
    func primaryMissing() {
        let failure = DNSFailure(EnhancedStatusCode(4, 4, 3), "try again")
        let route = MXSelection.route(domain: "example.org",
                                      hosts: [host("primary.example.org", 10, failure: failure), host("us", 20, ["192.0.2.25"])],
                                      identity: me)
        #expect(route == .temporary(EnhancedStatusCode(4, 4, 4), "unable to find primary relay for example.org"))
    }

    @Test("no host with an address: the first temporary error, else the last permanent one")
    func noAddresses() {
        let gone = DNSFailure(EnhancedStatusCode(5, 4, 4), "gone")
        let later = DNSFailure(EnhancedStatusCode(4, 4, 3), "later")
        #expect(MXSelection.route(domain: "d", hosts: [host("a", 10, failure: gone), host("b", 20, failure: later)], identity: me)
                == .temporary(EnhancedStatusCode(4, 4, 3), "later"))
        #expect(MXSelection.route(domain: "d", hosts: [host("a", 10, failure: gone), host("b", 20, failure: gone)], identity: .none)
                == .permanent(EnhancedStatusCode(5, 4, 4), "gone"))
        let mixed = [host("a", 10, failure: gone), host("b", 20, ["198.51.100.2"])]
        #expect(MXSelection.route(domain: "d", hosts: mixed, identity: me) == .hosts(mixed))
    }

    @Test("a [host] or implicit MX that is ourselves loops; one that is not is used")
    func single() {
        let ours = host("localhost", 0, ["192.0.2.25"])
        #expect(MXSelection.route(to: ours, identity: me, implicit: false)
                == .permanent(EnhancedStatusCode(5, 4, 6), "mail for localhost loops back to myself"))
        #expect(MXSelection.route(to: ours, identity: .none, implicit: true) == .implicit(ours))
    }

    @Test("failures carry their outcome: a null MX bounces with 5.1.10")
    func outcomes() {
        #expect(MXRoute.nullMX(domain: "example.org").failure?.outcome
                == .bounced(EnhancedStatusCode(5, 1, 10), "Domain example.org does not accept mail (nullMX)"))
        #expect(MXRoute.temporary(EnhancedStatusCode(4, 4, 3), "t").failure?.outcome == .deferred(EnhancedStatusCode(4, 4, 3), "t"))
        #expect(MXRoute.hosts([host("a", 1, ["198.51.100.1"])]).failure == nil)
    }
}
