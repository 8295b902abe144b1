import DNSResolver

/// A seeded generator, so shuffles are the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func ip(_ text: String) -> IPAddress { IPAddress(parsing: text)! }

func host(_ name: String, _ preference: Int, _ addresses: [String]) -> MXHost {
    MXHost(name: name, preference: preference,
           addresses: .success(HostAddresses(addresses.map(ip), source: .dns)))
}

func host(_ name: String, _ preference: Int, failure: DNSFailure) -> MXHost {
    MXHost(name: name, preference: preference, addresses: .failure(failure))
}

/// A zone held in memory: answers as a recursive server would, chasing
/// CNAMEs it knows unless told not to, and counting questions.
final class FakeZone: @unchecked Sendable {
    var records: [DNSRecord] = []
    var failures: [String: QueryFailure] = [:]
    var chasesCNAMEs = true
    private(set) var questions: [String] = []

    func add(_ owner: String, _ data: DNSRecord.Data) { records.append(DNSRecord(owner: owner, data: data)) }

    func answer(_ name: String, _ type: DNSRecordType) -> Result<[DNSRecord], QueryFailure> {
        questions.append("\(name) \(type)")
        if let failure = failures[name] { return .failure(failure) }
        var owner = name
        var answer: [DNSRecord] = []
        var seen: Set<String> = []
        while seen.insert(owner).inserted {
            let matching = records.filter { $0.owner == owner && sameType($0.data, type) }
            if !matching.isEmpty { return .success(answer + matching) }
            guard let alias = records.first(where: { $0.owner == owner && isCNAME($0.data) }),
                  case .cname(let target) = alias.data else { break }
            answer.append(alias)
            if !chasesCNAMEs { return .success(answer) }
            owner = target
        }
        if !answer.isEmpty { return .success(answer) }
        return records.contains(where: { $0.owner == name }) ? .failure(.noData) : .failure(.nameNotFound)
    }

    var lookup: DNSLookup { lookup(hosts: HostsTable()) }

    func lookup(hosts: HostsTable) -> DNSLookup {
        DNSLookup(hosts: hosts) { [self] name, type in answer(name, type) }
    }

    private func isCNAME(_ data: DNSRecord.Data) -> Bool {
        if case .cname = data { return true }
        return false
    }

    private func sameType(_ data: DNSRecord.Data, _ type: DNSRecordType) -> Bool {
        switch (data, type) {
        case (.a, .a), (.aaaa, .aaaa), (.mx, .mx), (.cname, .cname): return true
        default: return false
        }
    }
}
