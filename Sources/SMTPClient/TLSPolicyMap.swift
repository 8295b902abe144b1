import HikyakuConfig
import HikyakuSystem
import SMTPProtocol

/// Per-destination TLS levels (`smtp_tls_policy_map`), in the shape of
/// Postfix's smtp_tls_policy_maps: one `destination level` per line, `#`
/// comments. The destination is a route's host field as written
/// (`example.org`, `[mx.example.org]:587`); `.example.org` covers every
/// subdomain. The level is `none`, `may` or `encrypt`.
struct TLSPolicyMap: Sendable {
    var entries: [String: SMTPClientSession.TLSPolicy] = [:]

    init() {}

    /// Reads the map; a bad line is an error naming the file and line.
    init(path: String) throws(ConfigError) {
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readFile(path, limit: 16 << 20)
        } catch {
            throw ConfigError(file: path, line: 0, key: nil, reason: "cannot read the TLS policy map: \(error)")
        }
        var number = 0
        for raw in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let text = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard !words.isEmpty else { continue }
            guard words.count == 2, let level = SMTPClientSession.TLSPolicy(rawValue: words[1].lowercased()) else {
                throw ConfigError(file: path, line: number, key: nil,
                                  reason: "expected 'destination level' with level none, may or encrypt, found '\(text)'")
            }
            entries[words[0].lowercased()] = level
        }
    }

    /// The level for a route's host field: the exact entry, then the
    /// nearest `.parent` entry for a domain.
    func level(for nexthop: String) -> SMTPClientSession.TLSPolicy? {
        let key = nexthop.lowercased()
        if let level = entries[key] { return level }
        guard !key.hasPrefix("[") else { return nil }
        let host = key.split(separator: ":", maxSplits: 1).first.map(String.init) ?? key
        if let level = entries[host] { return level }
        var labels = host.split(separator: ".")
        while labels.count > 1 {
            labels.removeFirst()
            if let level = entries["." + labels.joined(separator: ".")] { return level }
        }
        return nil
    }
}
