import MailCore

/// A configuration error that names the file, the line and the key.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var key: String?
    public var reason: String

    public init(file: String, line: Int, key: String?, reason: String) {
        self.file = file
        self.line = line
        self.key = key
        self.reason = reason
    }

    public var description: String {
        var out = "\(file)"
        if line > 0 { out += ", line \(line)" }
        if let key { out += ": \(key)" }
        return out + ": \(reason)"
    }
}

/// hikyaku.conf: `key = value` lines, `#` comments, indented continuation
/// lines, `$key`, `${key}` and `$(key)` expansion. Keys not set take their
/// defaults from ``ConfigParameter/all``, so no file at all is a working
/// local-only configuration.
public struct Configuration: Sendable {
    public let path: String
    /// Values as written (unexpanded), with the line that set them.
    var explicit: [String: (value: String, line: Int)]
    /// Defaults the environment supplies (the host name).
    var environmentDefaults: [String: String]
    /// Keys that are set but unknown (reported as warnings).
    public let unknownKeys: [(key: String, line: Int)]

    public init(text: String, path: String, environmentDefaults: [String: String] = [:]) throws(ConfigError) {
        self.path = path
        self.environmentDefaults = environmentDefaults
        var values: [String: (String, Int)] = [:]
        var unknown: [(String, Int)] = []
        var current: (key: String, value: String, line: Int)? = nil

        func finish() {
            if let current {
                values[current.key] = (current.value.trimming(), current.line)
                if ConfigParameter.byName[current.key] == nil { unknown.append((current.key, current.line)) }
            }
            current = nil
        }

        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            let trimmed = line.trimming()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if line.first == " " || line.first == "\t" {
                guard current != nil else {
                    throw ConfigError(file: path, line: lineNumber, key: nil,
                                      reason: "continuation line without a parameter before it")
                }
                current!.value += " " + trimmed
                continue
            }
            finish()
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigError(file: path, line: lineNumber, key: nil,
                                  reason: "missing '=' after parameter name")
            }
            let key = line[..<equals].trimming()
            // Letters, digits and underscores; Postfix's names have capitals
            // too (smtp_tls_CAfile), so case is kept as written.
            guard !key.isEmpty, key.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 }) else {
                throw ConfigError(file: path, line: lineNumber, key: key.isEmpty ? nil : key,
                                  reason: "parameter names are letters, digits and underscores")
            }
            current = (key, String(line[line.index(after: equals)...]), lineNumber)
        }
        finish()
        explicit = values.mapValues { (value: $0.0, line: $0.1) }
        unknownKeys = unknown
        // Validate every known key now, so a bad value is reported at load
        // time with its line rather than later by the daemon that uses it.
        for (key, entry) in explicit {
            guard let parameter = ConfigParameter.byName[key] else { continue }
            let expanded = try expand(entry.value, key: key, line: entry.line, depth: 0)
            try Self.validate(expanded, as: parameter.kind, key: key, file: path, line: entry.line)
        }
    }

    /// The built-in defaults alone (no file).
    public static func defaults(environmentDefaults: [String: String] = [:]) -> Configuration {
        // Empty text cannot fail to parse.
        try! Configuration(text: "", path: "(defaults)", environmentDefaults: environmentDefaults)
    }

    func rawValue(_ key: String) -> (value: String, line: Int)? {
        if let value = explicit[key] { return value }
        if let value = environmentDefaults[key], ConfigParameter.byName[key]?.defaultValue.isEmpty ?? true {
            return (value, 0)
        }
        if let parameter = ConfigParameter.byName[key] { return (parameter.defaultValue, 0) }
        return nil
    }

    func expand(_ value: String, key: String, line: Int, depth: Int) throws(ConfigError) -> String {
        guard value.contains("$") else { return value }
        guard depth < 20 else {
            throw ConfigError(file: path, line: line, key: key, reason: "recursive $parameter expansion")
        }
        var out = ""
        var chars = Substring(value)
        while let dollar = chars.firstIndex(of: "$") {
            out += chars[..<dollar]
            var rest = chars[chars.index(after: dollar)...]
            var name: Substring
            if let open = rest.first, open == "{" || open == "(" {
                let close: Character = open == "{" ? "}" : ")"
                guard let end = rest.firstIndex(of: close) else {
                    throw ConfigError(file: path, line: line, key: key, reason: "unterminated $\(open)name\(close)")
                }
                name = rest[rest.index(after: rest.startIndex)..<end]
                rest = rest[rest.index(after: end)...]
            } else if rest.first == "$" {
                out += "$"
                chars = rest.dropFirst()
                continue
            } else {
                let end = rest.firstIndex(where: { !($0.isLetter || $0.isNumber || $0 == "_") }) ?? rest.endIndex
                name = rest[..<end]
                rest = rest[end...]
            }
            guard !name.isEmpty else {
                throw ConfigError(file: path, line: line, key: key, reason: "'$' without a parameter name (write $$ for a dollar)")
            }
            guard let referenced = rawValue(String(name)) else {
                throw ConfigError(file: path, line: line, key: key, reason: "unknown parameter $\(name)")
            }
            out += try expand(referenced.value, key: String(name), line: referenced.line == 0 ? line : referenced.line, depth: depth + 1)
            chars = rest
        }
        out += chars
        return out
    }

    static func validate(_ value: String, as kind: ConfigParameter.Kind, key: String, file: String, line: Int) throws(ConfigError) {
        switch kind {
        case .integer:
            guard Int(value) != nil else {
                throw ConfigError(file: file, line: line, key: key, reason: "expected a whole number, found '\(value)'")
            }
        case .size:
            guard let v = Int(value), v >= 0 else {
                throw ConfigError(file: file, line: line, key: key, reason: "expected a size in bytes, found '\(value)'")
            }
        case .time:
            guard parseTime(value) != nil else {
                throw ConfigError(file: file, line: line, key: key,
                                  reason: "expected a time like 300s, 5m, 1h or 5d, found '\(value)'")
            }
        case .boolean:
            guard parseBoolean(value) != nil else {
                throw ConfigError(file: file, line: line, key: key, reason: "expected yes or no, found '\(value)'")
            }
        case .string, .list, .path:
            break
        }
    }

    /// A time in seconds: a whole number with an optional unit, `s`, `m`,
    /// `h`, `d` or `w` (`300s`, `5m`, `2d`). Nil for anything else, for a
    /// sign, and for a value too large to count in seconds.
    public static func parseTime(_ value: String) -> Int? {
        guard let last = value.last else { return nil }
        let multipliers: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604_800]
        let multiplier = multipliers[last] ?? 1
        let digits = multipliers[last] == nil ? Substring(value) : value.dropLast()
        // Int("+5") accepts a sign; a time is digits only.
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits) else { return nil }
        let (seconds, overflow) = n.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : seconds
    }

    static func parseBoolean(_ value: String) -> Bool? {
        switch value.lowercased() {
        case "yes", "true", "on", "1": return true
        case "no", "false", "off", "0": return false
        default: return nil
        }
    }

    // MARK: Typed access. Keys are validated at load, so these do not fail
    // for keys of the table; a programming error (unknown key) traps.

    public func string(_ key: String) -> String {
        guard let raw = rawValue(key) else { preconditionFailure("unknown configuration key \(key)") }
        // Validation at init already expanded every explicit key once.
        return (try? expand(raw.value, key: key, line: raw.line, depth: 0)) ?? raw.value
    }

    public func integer(_ key: String) -> Int { Int(string(key)) ?? 0 }
    public func size(_ key: String) -> Int { Int(string(key)) ?? 0 }
    public func seconds(_ key: String) -> Int { Self.parseTime(string(key)) ?? 0 }
    public func boolean(_ key: String) -> Bool { Self.parseBoolean(string(key)) ?? false }

    /// A list split on commas and whitespace.
    public func list(_ key: String) -> [String] {
        string(key).split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
    }

    /// The line a key was set on, 0 for defaults.
    public func line(of key: String) -> Int { explicit[key]?.line ?? 0 }

    /// Every known key with its effective value, for `hikyaku config show`.
    public var effectiveValues: [(key: String, value: String)] {
        ConfigParameter.all.map { ($0.name, string($0.name)) }
    }
}
