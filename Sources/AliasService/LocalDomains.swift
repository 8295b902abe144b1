import MailCore

/// The domains this host takes mail for: `$myhostname`, `localhost`, and every
/// name in local-host-names (sendmail's class w file: one name per line,
/// `#` comments).
public struct LocalDomains: Sendable, Equatable {
    public private(set) var names: Set<String>

    public init(hostname: String, fileText: String?) {
        var names: Set<String> = ["localhost", "localhost.localdomain", hostname.asciiLowercased()]
        for raw in (fileText ?? "").split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            for word in line.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
                var name = word.asciiLowercased()
                if name.hasSuffix(".") { name.removeLast() }
                if !name.isEmpty { names.insert(name) }
            }
        }
        self.names = names
    }

    public func contains(_ domain: String) -> Bool {
        var name = domain.asciiLowercased()
        if name.hasSuffix(".") { name.removeLast() }
        return names.contains(name)
    }
}
