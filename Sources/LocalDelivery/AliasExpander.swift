import MailCore

/// Expands a local recipient through the aliases, recursively, to the final
/// deliveries (sendmail and Postfix semantics for the first map set):
///
/// - a target that names a local alias is expanded again, up to a depth limit;
/// - a target that names the alias itself, or starts with a backslash
///   (`\jun`), is delivered to that user without further aliasing;
/// - duplicates are delivered once;
/// - a loop ends the expansion with a 5.4.6 error.
///
/// File, pipe and `:include:` targets, and remote addresses, are reported as
/// such: the caller decides what each means.
public struct AliasExpander {
    public enum Target: Hashable, Sendable {
        /// Deliver to this local user's mailbox.
        case user(String)
        /// Send on to another address (not local).
        case forward(String)
        /// `/path/to/file`.
        case file(String)
        /// `|command`.
        case pipe(String)
        /// `:include:/path`.
        case include(String)
    }

    public enum ExpansionError: Error, Equatable, Sendable {
        case loop(String)
        case lookupFailed(String)
    }

    public static let maximumDepth = 20

    /// One level of the aliases map: nil if `name` is not an alias.
    let lookup: (String) throws -> [String]?
    /// True when an address `local@domain` is in a local domain.
    let isLocalDomain: (String) -> Bool

    public init(lookup: @escaping (String) throws -> [String]?, isLocalDomain: @escaping (String) -> Bool) {
        self.lookup = lookup
        self.isLocalDomain = isLocalDomain
    }

    /// Expands `name` (a local part, lower case). A name that is not an alias
    /// is itself the user.
    public func expand(_ name: String) throws(ExpansionError) -> [Target] {
        var results: [Target] = []
        var seen: Set<Target> = []
        try expand(name, depth: 0, chain: [], into: &results, seen: &seen)
        return results
    }

    func expand(_ name: String, depth: Int, chain: [String], into results: inout [Target], seen: inout Set<Target>) throws(ExpansionError) {
        guard depth <= Self.maximumDepth else { throw .loop(chain.joined(separator: " -> ")) }
        var targets: [String]?
        // user+detail: the alias user+detail, then user+*, then user; the
        // mailbox is user's.
        var mailbox = name
        do {
            targets = try lookup(name)
            if targets == nil, !name.hasPrefix("\""), let plus = name.firstIndex(of: "+"), plus != name.startIndex {
                let user = String(name[..<plus])
                mailbox = user
                targets = try lookup(user + "+*")
                if targets == nil { targets = try lookup(user) }
            }
        } catch {
            throw .lookupFailed("\(error)")
        }
        guard let targets else {
            append(.user(mailbox), to: &results, seen: &seen)
            return
        }
        for raw in targets {
            let target = raw.trimming(" \t")
            if target.hasPrefix("\\") {
                append(.user(String(target.dropFirst()).asciiLowercased()), to: &results, seen: &seen)
            } else if target.hasPrefix("|") {
                append(.pipe(String(target.dropFirst())), to: &results, seen: &seen)
            } else if target.hasPrefix("/") {
                append(.file(target), to: &results, seen: &seen)
            } else if target.lowercased().hasPrefix(":include:") {
                append(.include(String(target.dropFirst(9)).trimming(" \t")), to: &results, seen: &seen)
            } else {
                var address = target
                if address.hasPrefix("<") && address.hasSuffix(">") { address = String(address.dropFirst().dropLast()) }
                guard let parsed = try? MailAddress.parseMailbox(Substring(address)) else {
                    // An unparsable target names no one: deliver to nothing, as
                    // sendmail reports it; the alias file owner sees the warning.
                    continue
                }
                if let domain = parsed.domain, !isLocalDomain(domain) {
                    append(.forward(parsed.description), to: &results, seen: &seen)
                    continue
                }
                let key = parsed.localPartKey
                if key == name {
                    // "jun: jun, other": the user's own mailbox.
                    append(.user(key), to: &results, seen: &seen)
                    continue
                }
                if chain.contains(key) {
                    throw .loop((chain + [name, key]).joined(separator: " -> "))
                }
                try expand(key, depth: depth + 1, chain: chain + [name], into: &results, seen: &seen)
            }
        }
    }

    func append(_ target: Target, to results: inout [Target], seen: inout Set<Target>) {
        if seen.insert(target).inserted { results.append(target) }
    }
}
