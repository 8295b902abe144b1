/// Address parsing with sendmail's semantics (its canonify ruleset and the
/// parts of ruleset 0 that take addresses apart), for the decisions that must
/// come out as sendmail's do: routing (`/parse`), relay checks, aliases.
public enum SendmailAddress {
    /// A syntax error, as sendmail reports it: `553 5.1.3 Invalid route address`.
    public struct SyntaxError: Error, Sendable, Equatable {
        public var code: Int
        public var enhanced: String?
        public var text: String

        public init(_ text: String, code: Int = 553, enhanced: String? = "5.1.3") {
            self.code = code
            self.enhanced = enhanced
            self.text = text
        }
    }

    /// An address taken apart: the local part as written (quotes kept), the
    /// domain without a trailing dot, nil for an unqualified address.
    public struct Parts: Sendable, Equatable, CustomStringConvertible {
        public var local: String
        public var domain: String?

        public init(local: String, domain: String?) {
            self.local = local
            self.domain = domain
        }

        public var description: String { domain.map { "\(local)@\($0)" } ?? local }
        public var lowercasedDomain: String? { domain?.lowercasedASCII }
    }

    /// The addr-spec inside a full address: `Jun <jun@example.jp>` and
    /// `jun@example.jp (Jun)` both give `jun@example.jp`.
    public static func addrSpec(_ text: String) -> String {
        var out = ""
        var angle: String? = nil
        var inQuotes = false
        var escaped = false
        var commentDepth = 0
        var current = ""
        for ch in text {
            if escaped {
                current.append(ch)
                escaped = false
                continue
            }
            if ch == "\\" {
                current.append(ch)
                escaped = true
                continue
            }
            if inQuotes {
                current.append(ch)
                if ch == "\"" { inQuotes = false }
                continue
            }
            if commentDepth > 0 {
                if ch == "(" { commentDepth += 1 }
                if ch == ")" { commentDepth -= 1 }
                continue
            }
            switch ch {
            case "\"":
                inQuotes = true
                current.append(ch)
            case "(":
                commentDepth = 1
            case "<":
                out += current
                current = ""
            case ">":
                angle = current
                current = ""
            default:
                current.append(ch)
            }
        }
        out += current
        return (angle ?? out).trimming()
    }

    /// Splits on `separator` outside double quotes and backslash escapes.
    static func splitUnquoted(_ text: String, on separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var inQuotes = false
        var escaped = false
        for ch in text {
            if escaped { current.append(ch); escaped = false; continue }
            if ch == "\\" { current.append(ch); escaped = true; continue }
            if ch == "\"" { inQuotes.toggle() }
            if ch == separator && !inQuotes {
                parts.append(current)
                current = ""
            } else {
                current.append(ch)
            }
        }
        parts.append(current)
        return parts
    }

    static func containsUnquoted(_ text: String, _ character: Character) -> Bool {
        splitUnquoted(text, on: character).count > 1
    }

    /// `"jun smith"` gives `jun smith`; anything else is returned as is.
    public static func dequote(_ local: String) -> String {
        guard local.count >= 2, local.hasPrefix("\""), local.hasSuffix("\"") else { return local }
        var out = ""
        var escaped = false
        for ch in local.dropFirst().dropLast() {
            if escaped { out.append(ch); escaped = false } else if ch == "\\" { escaped = true } else { out.append(ch) }
        }
        return out
    }

    /// Takes an address apart as sendmail's canonify does: source routes are
    /// dropped, a second `@` is an invalid route, a trailing dot goes, and the
    /// local part of an address in a domain that `stripsDomain` accepts is
    /// parsed again when it hides another address (`"user@remote"@local`,
    /// `user%remote@local`, `remote!user@local`).
    public static func parse(_ text: String, stripsDomain: (String) -> Bool, depth: Int = 0) throws(SyntaxError) -> Parts {
        var spec = addrSpec(text)
        guard depth < 10 else { throw SyntaxError("Invalid route address") }
        if spec.isEmpty { throw SyntaxError("User address required") }
        if spec.hasSuffix(":") || spec.contains(":;") {
            throw SyntaxError("List:; syntax illegal for recipient addresses")
        }
        if spec.hasPrefix("@") {
            // RFC 5321 source route: keep what follows the colon.
            let pieces = splitUnquoted(spec, on: ":")
            guard pieces.count >= 2, !pieces.last!.isEmpty else { throw SyntaxError("User address required") }
            spec = pieces.dropFirst().joined(separator: ":")
        }
        let atParts = splitUnquoted(spec, on: "@")
        if atParts.count > 2 { throw SyntaxError("Invalid route address") }
        var local = atParts[0].trimming()
        var domain: String? = nil
        if atParts.count == 2 {
            var d = atParts[1].trimming()
            guard !d.isEmpty else { throw SyntaxError("Hostname required") }
            while d.hasSuffix(".") { d.removeLast() }
            guard !d.isEmpty else { throw SyntaxError("Hostname required") }
            domain = d
            guard !local.isEmpty else { throw SyntaxError("User address required") }
        }
        guard domain == nil || stripsDomain(domain!) else {
            return Parts(local: local, domain: domain)
        }
        // The domain is ours (or there is none): look inside the local part.
        if local.hasPrefix("\"") && local.hasSuffix("\"") && local.count >= 2 {
            let inner = dequote(local)
            if containsUnquoted(inner, "@") || containsUnquoted(inner, "%") || containsUnquoted(inner, "!") {
                return try parse(inner, stripsDomain: stripsDomain, depth: depth + 1)
            }
            return Parts(local: local, domain: domain)
        }
        if let bang = splitUnquoted(local, on: "!").first, bang.count < local.count {
            let rest = String(local.dropFirst(bang.count + 1))
            let host = bang.contains(".") ? bang : bang + ".uucp"
            return try parse("\(rest)@\(host)", stripsDomain: stripsDomain, depth: depth + 1)
        }
        let percent = splitUnquoted(local, on: "%")
        if percent.count > 1 {
            let user = percent.dropLast().joined(separator: "%")
            local = "\(user)@\(percent.last!)"
            return try parse(local, stripsDomain: stripsDomain, depth: depth + 1)
        }
        return Parts(local: local, domain: domain)
    }

    /// `user+detail` split into `user` and `detail` (nil without a plus).
    public static func splitDetail(_ local: String) -> (user: String, detail: String?) {
        guard !local.hasPrefix("\""), let plus = local.firstIndex(of: "+"), plus != local.startIndex else { return (local, nil) }
        return (String(local[..<plus]), String(local[local.index(after: plus)...]))
    }
}

extension StringProtocol {
    func trimming() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
