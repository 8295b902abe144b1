#if canImport(Glibc)
import Glibc
#endif
import MailCore

/// TCP wrappers' access control files, `/etc/hosts.allow` and
/// `/etc/hosts.deny`, read as hosts_access(5) describes them, so that a
/// sendmail host's `sendmail: ALL` (or a `sendmail: 192.168.1.` in
/// hosts.allow under an `ALL: ALL` in hosts.deny) keeps deciding who may
/// connect.
///
/// A rule is `daemon_list : client_list [ : option : ... ]`. The first rule
/// in hosts.allow whose daemon and client lists match allows; else the first
/// in hosts.deny denies; else the client is allowed. The options `allow` and
/// `deny` (Debian's libwrap is built with them) turn a rule's verdict around;
/// `twist` denies (the client never reaches the mail server). Shell commands
/// (`spawn`) are not run: each is reported once as a problem.
///
/// Patterns: `ALL`, `LOCAL`, `KNOWN`, `UNKNOWN`, `PARANOID`, `EXCEPT`,
/// `.domain.example` (name suffix), `192.168.` (address prefix),
/// `n.n.n.n/m.m.m.m` and `n.n.n.n/len`, `[2001:db8::]/32`, `*` and `?`
/// wildcards, `/path/file` (a file of patterns), `daemon@host` and
/// `user@host` (only `ALL@` or `UNKNOWN@` users match: no ident lookups).
/// `@netgroup` is reported and never matches.
public struct HostsAccess: Sendable {
    /// The connecting client, as the mail server knows it.
    public struct Client: Sendable {
        public var address: String
        /// The name whose forward lookup gave the address back; nil when
        /// there is none.
        public var name: String?
        /// A name was found but does not lead back to the address.
        public var paranoid: Bool

        public init(address: String, name: String?, paranoid: Bool = false) {
            self.address = address
            self.name = name
            self.paranoid = paranoid
        }
    }

    public struct Decision: Equatable, Sendable {
        public var allowed: Bool
        /// `file:line` of the deciding rule; nil when no rule matched.
        public var rule: String?
    }

    struct Rule: Sendable {
        var location: String
        var daemons: [String]
        var clients: [String]
        /// From an `allow` or `deny` option (or `twist`: false).
        var verdict: Bool?
    }

    var allowRules: [Rule] = []
    var denyRules: [Rule] = []
    /// Bad lines and unsupported features, each with file and line.
    public private(set) var problems: [String] = []

    public init() {}

    /// Reads the rules. A nil text is a file that does not exist (no rules).
    /// `readFile` reads a `/path` pattern's file.
    public init(allowPath: String, allowText: String?, denyPath: String, denyText: String?,
                readFile: (String) -> String? = { _ in nil }) {
        if let allowText { allowRules = parse(allowText, path: allowPath, readFile: readFile) }
        if let denyText { denyRules = parse(denyText, path: denyPath, readFile: readFile) }
    }

    public var isEmpty: Bool { allowRules.isEmpty && denyRules.isEmpty }

    /// Some rule's client list depends on the client's name, so the
    /// decision must wait for the reverse lookup; otherwise the address
    /// alone decides and the greeting need not wait for DNS.
    public var needsClientName: Bool {
        (allowRules + denyRules).contains { $0.clients.contains(where: Self.patternNeedsName) }
    }

    static func patternNeedsName(_ pattern: String) -> Bool {
        switch pattern.uppercased() {
        case "ALL", "EXCEPT": return false
        case "LOCAL", "KNOWN", "UNKNOWN", "PARANOID": return true
        default: break
        }
        if let at = pattern.lastIndex(of: "@"), at != pattern.startIndex {
            return patternNeedsName(String(pattern[pattern.index(after: at)...]))
        }
        if pattern.hasPrefix("@") || pattern.hasPrefix("[") || pattern.contains("/") { return false }
        if pattern.hasPrefix(".") || pattern.contains("*") || pattern.contains("?") { return true }
        if pattern.hasSuffix(".") { return false }
        return ipv4(pattern) == nil && ipv6Bytes(pattern) == nil
    }

    /// The verdict for a client of a server known by any of `daemons`.
    public func decide(daemons: [String], client: Client, serverAddress: String = "") -> Decision {
        for rule in allowRules where matches(rule, daemons: daemons, client: client, serverAddress: serverAddress) {
            return Decision(allowed: rule.verdict ?? true, rule: rule.location)
        }
        for rule in denyRules where matches(rule, daemons: daemons, client: client, serverAddress: serverAddress) {
            return Decision(allowed: rule.verdict ?? false, rule: rule.location)
        }
        return Decision(allowed: true, rule: nil)
    }

    // MARK: Reading

    mutating func parse(_ text: String, path: String, readFile: (String) -> String?) -> [Rule] {
        var rules: [Rule] = []
        var pending = ""
        var startLine = 0
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            var line = Substring(raw)
            if line.last == "\r" { line = line.dropLast() }
            if pending.isEmpty {
                startLine = number
                let first = line.first(where: { $0 != " " && $0 != "\t" })
                if first == nil || first == "#" { continue }
            }
            // A backslash at the end joins the next line.
            if line.last == "\\" {
                pending += line.dropLast() + " "
                continue
            }
            pending += line
            let joined = pending
            pending = ""
            if let rule = parseRule(joined, location: "\(path):\(startLine)", readFile: readFile) { rules.append(rule) }
        }
        if !pending.isEmpty, let rule = parseRule(pending, location: "\(path):\(startLine)", readFile: readFile) {
            rules.append(rule)
        }
        return rules
    }

    mutating func parseRule(_ line: String, location: String, readFile: (String) -> String?) -> Rule? {
        let fields = Self.splitFields(line)
        guard fields.count >= 2 else {
            problems.append("\(location): missing \":\" separator; line ignored")
            return nil
        }
        let daemons = Self.words(fields[0])
        var clients: [String] = []
        for word in Self.words(fields[1]) {
            if word.hasPrefix("/") {
                guard let text = readFile(word) else {
                    problems.append("\(location): cannot read pattern file \(word); it matches nothing")
                    continue
                }
                for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                    clients += Self.words(String(line))
                }
            } else {
                if word.hasPrefix("@") {
                    problems.append("\(location): NIS netgroup \(word) is not supported; it matches nothing")
                }
                clients.append(word)
            }
        }
        guard !daemons.isEmpty, !clients.isEmpty else {
            problems.append("\(location): empty \(daemons.isEmpty ? "daemon" : "client") list; line ignored")
            return nil
        }
        var verdict: Bool? = nil
        for option in fields.dropFirst(2) {
            let trimmed = option.trimming()
            let keyword = trimmed.prefix(while: { $0 != " " && $0 != "\t" && $0 != "=" }).lowercased()
            switch keyword {
            case "":
                continue
            case "allow":
                verdict = true
            case "deny":
                verdict = false
            case "twist":
                problems.append("\(location): \"twist\" is not run; the client is refused instead")
                verdict = false
            default:
                problems.append("\(location): option \"\(keyword)\" is not carried out by hikyaku")
            }
        }
        return Rule(location: location, daemons: daemons, clients: clients, verdict: verdict)
    }

    /// Splits at ':' outside `[...]` (IPv6 addresses); `\:` is a colon.
    static func splitFields(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var inBrackets = false
        var escaped = false
        for ch in line {
            if escaped {
                current.append(ch)
                escaped = false
                continue
            }
            switch ch {
            case "\\": escaped = true
            case "[": inBrackets = true; current.append(ch)
            case "]": inBrackets = false; current.append(ch)
            case ":" where !inBrackets:
                fields.append(current)
                current = ""
            default: current.append(ch)
            }
        }
        fields.append(current)
        return fields
    }

    static func words(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init)
    }

    // MARK: Matching

    func matches(_ rule: Rule, daemons: [String], client: Client, serverAddress: String) -> Bool {
        Self.listMatches(rule.daemons[...]) { Self.daemonMatches($0, daemons: daemons, serverAddress: serverAddress) }
            && Self.listMatches(rule.clients[...]) { Self.clientMatches($0, client) }
    }

    /// hosts_access(5): a list matches when a word before EXCEPT matches
    /// and the list after EXCEPT does not.
    static func listMatches(_ list: ArraySlice<String>, _ match: (String) -> Bool) -> Bool {
        var index = list.startIndex
        while index < list.endIndex {
            let word = list[index]
            if word.uppercased() == "EXCEPT" { return false }
            if match(word) {
                guard let except = list[index...].firstIndex(where: { $0.uppercased() == "EXCEPT" }) else { return true }
                return !listMatches(list[(except + 1)...], match)
            }
            index += 1
        }
        return false
    }

    static func daemonMatches(_ pattern: String, daemons: [String], serverAddress: String) -> Bool {
        var name = Substring(pattern)
        if let at = pattern.lastIndex(of: "@") {
            name = pattern[..<at]
            let host = String(pattern[pattern.index(after: at)...])
            guard hostMatches(host, Client(address: serverAddress, name: nil)) else { return false }
        }
        return name.uppercased() == "ALL" || daemons.contains { $0.lowercased() == name.lowercased() }
    }

    static func clientMatches(_ pattern: String, _ client: Client) -> Bool {
        if let at = pattern.lastIndex(of: "@"), at != pattern.startIndex {
            // user@host: no ident lookups, so the user is unknown.
            let user = pattern[..<at].uppercased()
            guard user == "ALL" || user == "UNKNOWN" else { return false }
            return hostMatches(String(pattern[pattern.index(after: at)...]), client)
        }
        return hostMatches(pattern, client)
    }

    static func hostMatches(_ pattern: String, _ client: Client) -> Bool {
        let upper = pattern.uppercased()
        let name = client.paranoid ? nil : client.name?.lowercased()
        let addressKnown = !client.address.isEmpty && client.address != "unknown"
        switch upper {
        case "ALL": return true
        case "LOCAL": return name.map { !$0.contains(".") } ?? false
        case "KNOWN": return name != nil && addressKnown
        case "UNKNOWN": return name == nil || !addressKnown
        case "PARANOID": return client.paranoid
        default: break
        }
        let lower = pattern.lowercased()
        if lower.hasPrefix("@") { return false }
        if lower.hasPrefix("[") { return ipv6Matches(lower, client.address) }
        if lower.contains("*") || lower.contains("?") {
            return wildcard(lower[...], client.address.lowercased()[...]) || (name.map { wildcard(lower[...], $0[...]) } ?? false)
        }
        if lower.hasPrefix(".") { return name?.hasSuffix(lower) ?? false }
        if lower.hasSuffix(".") { return client.address.hasPrefix(lower) }
        if let slash = lower.firstIndex(of: "/") {
            return ipv4NetMatches(String(lower[..<slash]), String(lower[lower.index(after: slash)...]), client.address)
        }
        return lower == client.address.lowercased() || lower == name
    }

    static func wildcard(_ pattern: Substring, _ text: Substring) -> Bool {
        guard let first = pattern.first else { return text.isEmpty }
        if first == "*" {
            var rest = text
            while true {
                if wildcard(pattern.dropFirst(), rest) { return true }
                guard !rest.isEmpty else { return false }
                rest = rest.dropFirst()
            }
        }
        guard let head = text.first, first == "?" || first == head else { return false }
        return wildcard(pattern.dropFirst(), text.dropFirst())
    }

    static func ipv4(_ text: String) -> UInt32? {
        var value = in_addr()
        guard inet_pton(AF_INET, text, &value) == 1 else { return nil }
        return UInt32(bigEndian: value.s_addr)
    }

    static func ipv4NetMatches(_ net: String, _ mask: String, _ address: String) -> Bool {
        guard let netValue = ipv4(net), let addressValue = ipv4(address) else { return false }
        let maskValue: UInt32
        if let bits = Int(mask), (0...32).contains(bits), mask.allSatisfy(\.isNumber) {
            maskValue = bits == 0 ? 0 : ~UInt32(0) << UInt32(32 - bits)
        } else if let value = ipv4(mask) {
            maskValue = value
        } else {
            return false
        }
        return addressValue & maskValue == netValue & maskValue
    }

    static func ipv6Bytes(_ text: String) -> [UInt8]? {
        var value = in6_addr()
        guard inet_pton(AF_INET6, text, &value) == 1 else { return nil }
        return withUnsafeBytes(of: &value) { Array($0) }
    }

    /// `[2001:db8::1]` or `[2001:db8::]/32`.
    static func ipv6Matches(_ pattern: String, _ address: String) -> Bool {
        guard let close = pattern.firstIndex(of: "]") else { return false }
        let inner = String(pattern[pattern.index(after: pattern.startIndex)..<close])
        var bits = 128
        let rest = pattern[pattern.index(after: close)...]
        if !rest.isEmpty {
            guard rest.first == "/", let value = Int(rest.dropFirst()), (0...128).contains(value) else { return false }
            bits = value
        }
        guard let net = ipv6Bytes(inner), let client = ipv6Bytes(address) else { return false }
        for index in 0..<16 {
            let keep = max(0, min(8, bits - index * 8))
            let mask: UInt8 = keep == 0 ? 0 : ~UInt8(0) << UInt8(8 - keep)
            if net[index] & mask != client[index] & mask { return false }
        }
        return true
    }
}
