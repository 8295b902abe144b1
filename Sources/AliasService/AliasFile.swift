import MailCore

/// A parsed sendmail aliases file (aliases(5)):
///
///     # comment
///     name: target, target,
///         continued-target
///     "|/usr/bin/command": not allowed as a key; keys are local names
///
/// Keys are case-insensitive. A line that cannot be parsed is reported with
/// its number and skipped; the rest of the file still counts. When a name
/// appears twice, the later entry wins (and a warning is given), as sendmail's
/// newaliases does.
public struct AliasFile: Sendable, Equatable {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var isWarning = false
        /// `line N: reason`, or the reason alone for an aliases.db entry,
        /// which has no line.
        public var description: String { line > 0 ? "line \(line): \(reason)" : reason }
    }

    public private(set) var entries: [String: [String]] = [:]
    /// The right-hand side of each alias as written, continuation lines
    /// joined: what newaliases stores in aliases.db, as sendmail's does, so
    /// that the database splits into exactly the targets the text gives.
    public private(set) var values: [String: String] = [:]
    /// The line each alias was defined on (0 for aliases.db entries).
    public private(set) var lines: [String: Int] = [:]
    public private(set) var problems: [Problem] = []

    public init() {}

    /// Aliases read from a compiled aliases.db: each value is the
    /// right-hand side as written (sendmail's newaliases stores it so, and
    /// so does ours), split the same way as the text file. An entry that does
    /// not split is left out and reported, naming the alias.
    public init(databaseEntries: [(key: String, value: String)]) {
        for (key, value) in databaseEntries.sorted(by: { $0.key < $1.key }) where key != "@" {
            let targets: [String]
            do {
                targets = try Self.splitTargets(Substring(value))
            } catch {
                problems.append(Problem(line: 0, reason: "alias '\(key)': its value in the database does not parse (\(error.text)); alias ignored"))
                continue
            }
            guard !targets.isEmpty else {
                problems.append(Problem(line: 0, reason: "alias '\(key)' has no targets in the database; alias ignored"))
                continue
            }
            entries[key.asciiLowercased()] = targets
            values[key.asciiLowercased()] = value
        }
    }

    /// Warnings (a name defined twice) do not make a file unusable; errors do.
    public var errors: [Problem] { problems.filter { !$0.isWarning } }

    public init(text: String) {
        var logical: [(line: Int, text: String)] = []
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.first == "#" { continue }
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            if line.first == " " || line.first == "\t" {
                if logical.isEmpty {
                    problems.append(Problem(line: lineNumber, reason: "continuation line without an alias before it"))
                } else {
                    logical[logical.count - 1].text += " " + line.drop(while: { $0 == " " || $0 == "\t" })
                }
                continue
            }
            logical.append((lineNumber, String(line)))
        }
        for (number, text) in logical {
            guard let colon = Self.keyColon(in: text) else {
                problems.append(Problem(line: number, reason: "missing colon after the alias name"))
                continue
            }
            let rawKey = text[..<colon].trimming()
            var key = rawKey
            if key.hasPrefix("\"") && key.hasSuffix("\"") && key.count >= 2 { key = String(key.dropFirst().dropLast()) }
            guard !key.isEmpty else {
                problems.append(Problem(line: number, reason: "empty alias name"))
                continue
            }
            guard !key.contains(where: { $0 == " " || $0 == "\t" }) || rawKey.hasPrefix("\"") else {
                problems.append(Problem(line: number, reason: "alias name '\(key)' contains white space"))
                continue
            }
            let value = text[text.index(after: colon)...]
            let targets: [String]
            do {
                targets = try Self.splitTargets(value)
            } catch let reason {
                problems.append(Problem(line: number, reason: reason.text))
                continue
            }
            guard !targets.isEmpty else {
                problems.append(Problem(line: number, reason: "alias '\(key)' has no targets"))
                continue
            }
            let lowered = key.asciiLowercased()
            if entries[lowered] != nil {
                problems.append(Problem(line: number, reason: "alias '\(key)' defined twice; the later entry is used", isWarning: true))
            }
            entries[lowered] = targets
            values[lowered] = value.trimming()
            lines[lowered] = number
        }
    }

    public func lookup(_ name: String) -> [String]? {
        entries[name.asciiLowercased()]
    }

    struct Reason: Error { let text: String }

    /// The colon that ends the key: the first one outside a quoted key.
    static func keyColon(in text: String) -> String.Index? {
        var inQuotes = false
        for index in text.indices {
            let c = text[index]
            if c == "\"" { inQuotes.toggle() }
            else if c == ":" && !inQuotes { return index }
        }
        return nil
    }

    /// Splits on commas outside double quotes; quotes around a whole target
    /// are removed (`"|/usr/bin/vacation jun"`).
    static func splitTargets(_ text: Substring) throws(Reason) -> [String] {
        var targets: [String] = []
        var current = ""
        var inQuotes = false
        var escaped = false
        for c in text {
            if escaped {
                current.append(c)
                escaped = false
                continue
            }
            switch c {
            case "\\":
                current.append(c)
                escaped = true
            case "\"":
                inQuotes.toggle()
                current.append(c)
            case "," where !inQuotes:
                targets.append(current)
                current = ""
            default:
                current.append(c)
            }
        }
        guard !inQuotes else { throw Reason(text: "unbalanced quote") }
        targets.append(current)
        return targets.compactMap { raw in
            var t = raw.trimming()
            if t.hasPrefix("\"") && t.hasSuffix("\"") && t.count >= 2 {
                t = String(t.dropFirst().dropLast())
            }
            return t.isEmpty ? nil : t
        }
    }
}
