/// Where an address goes: sendmail's mailer, host and user triple.
public struct MailerTriple: Sendable, Equatable, CustomStringConvertible {
    public var mailer: String
    public var host: String?
    public var user: String
    /// For `*error*`: the text after `address... ` in sendmail's error line.
    public var errorText: String?

    public init(mailer: String, host: String?, user: String, errorText: String? = nil) {
        self.mailer = mailer
        self.host = host
        self.user = user
        self.errorText = errorText
    }

    /// sendmail's `-bt` line: `mailer local, user jun`.
    public var description: String {
        var out = "mailer \(mailer)"
        if let host { out += ", host \(host)" }
        return out + ", user \(user)"
    }

    public var isError: Bool { mailer == "*error*" }
    public var isLocal: Bool { mailer == "local" }

    /// For an error: the enhanced status code, from the host field when it is
    /// one, or the one sendmail implies for a word like `nouser`.
    public var errorStatus: String {
        if let host, host.split(separator: ".").count == 3, host.allSatisfy({ $0.isNumber || $0 == "." }) { return host }
        if host == "nouser" || user.hasPrefix("nouser") { return "5.1.1" }
        return "5.0.0"
    }
}

/// An explained decision: the result, and each step that led to it, with
/// the file and line of every map entry used.
public struct Traced<Value: Sendable>: Sendable {
    public var value: Value
    public var steps: [String]
}

/// Ruleset 0: resolves a recipient address to a mailer triple through
/// domaintable, class w, virtusertable and mailertable, as sendmail 8.17
/// with Debian's configuration does.
public struct Router: Sendable {
    public let tables: RoutingTables

    public init(tables: RoutingTables) {
        self.tables = tables
    }

    public func route(_ address: String) -> Traced<MailerTriple> {
        var steps: [String] = []
        let triple = route(address, steps: &steps, depth: 0)
        return Traced(value: triple, steps: steps)
    }

    func route(_ address: String, steps: inout [String], depth: Int) -> MailerTriple {
        let parts: SendmailAddress.Parts
        do {
            parts = try SendmailAddress.parse(address, stripsDomain: { tables.isLocal($0) || tables.isVirtual($0) })
        } catch {
            steps.append("syntax: \(error.text)")
            return MailerTriple(mailer: "*error*", host: error.enhanced, user: "\"\(error.code) \(error.text)\"",
                                errorText: error.text)
        }
        var domain = parts.domain
        if let d = domain, let hit = tables.domaintable.lookup(RoutingTables.normalized(d)) {
            steps.append("domaintable \(hit.location): \(d) is rewritten to \(hit.value)")
            domain = hit.value
        }
        guard let d = domain else {
            return localUser(parts.local, steps: &steps)
        }
        let isLocal = tables.isLocal(d)
        if isLocal || tables.isVirtual(d) {
            if isLocal { steps.append("\(d) is a local domain (class w\(tables.classSources[RoutingTables.normalized(d)].map { ", " + $0 } ?? ""))") }
            else { steps.append("\(d) is a virtual domain") }
            if let hit = virtualLookup(local: parts.local, domain: d, steps: &steps) {
                return resolveVirtual(hit, local: parts.local, domain: d, steps: &steps, depth: depth)
            }
            if isLocal { return localUser(parts.local, steps: &steps) }
        }
        return remote(local: parts.local, domain: d, original: address, steps: &steps)
    }

    func localUser(_ local: String, steps: inout [String]) -> MailerTriple {
        let user = local.hasPrefix("\"") ? local : local.lowercasedASCII
        return MailerTriple(mailer: "local", host: nil, user: user)
    }

    /// virtusertable keys in sendmail's order: `user@domain`, `user+*@domain`
    /// and `user@domain` without the detail, then `@domain`.
    func virtualLookup(local: String, domain: String, steps: inout [String]) -> (MapHit, user: String, detail: String?)? {
        guard !tables.virtusertable.isEmpty else { return nil }
        let d = RoutingTables.normalized(domain)
        let bare = SendmailAddress.dequote(local)
        let (user, detail) = SendmailAddress.splitDetail(bare)
        var keys = ["\(bare)@\(d)"]
        if let _ = detail {
            keys.append("\(user)+*@\(d)")
            keys.append("\(user)@\(d)")
        }
        keys.append("@\(d)")
        for key in keys {
            if let hit = tables.virtusertable.lookup(key) {
                steps.append("virtusertable \(hit.location): \(hit.key) -> \(hit.value)")
                return (hit, user, detail)
            }
        }
        steps.append("virtusertable: no entry for \(bare)@\(d)")
        return nil
    }

    func resolveVirtual(_ found: (MapHit, user: String, detail: String?), local: String, domain: String,
                        steps: inout [String], depth: Int) -> MailerTriple {
        var value = found.0.value
        value = value.replacingOccurrences("%1", with: found.user)
        value = value.replacingOccurrences("%2", with: found.detail ?? "")
        value = value.replacingOccurrences("%3", with: domain)
        if value.lowercasedASCII.hasPrefix("error:") {
            return Self.errorTriple(String(value.dropFirst(6)), style: .virtusertable)
        }
        guard depth < 10 else {
            return MailerTriple(mailer: "*error*", host: "5.4.6", user: "\"554 virtusertable loop\"", errorText: "virtusertable loop")
        }
        if value.contains("@") {
            return route(value, steps: &steps, depth: depth + 1)
        }
        return localUser(value, steps: &steps)
    }

    enum ErrorStyle { case virtusertable, mailertable }

    /// `error:5.1.6:550 text`, `error:nouser text`.
    static func errorTriple(_ spec: String, style: ErrorStyle) -> MailerTriple {
        let fields = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        if fields.count == 2, fields[0].split(separator: ".").count == 3, fields[0].allSatisfy({ $0.isNumber || $0 == "." }) {
            let rest = fields[1].trimming()
            let text = rest.split(separator: " ", maxSplits: 1).dropFirst().first.map(String.init) ?? rest
            return MailerTriple(mailer: "*error*", host: String(fields[0]), user: rest, errorText: text)
        }
        switch style {
        case .virtusertable:
            let words = spec.split(separator: " ", maxSplits: 1)
            let word = words.first.map(String.init) ?? ""
            let text = words.count > 1 ? String(words[1]) : word
            return MailerTriple(mailer: "*error*", host: word, user: text, errorText: text)
        case .mailertable:
            return MailerTriple(mailer: "*error*", host: nil, user: spec, errorText: spec)
        }
    }

    func remote(local: String, domain: String, original: String, steps: inout [String]) -> MailerTriple {
        let d = RoutingTables.normalized(domain)
        let fullUser = "\(local)@\(domain.hasSuffix(".") ? String(domain.dropLast()) : domain)"
        if let hit = mailertableLookup(d) {
            steps.append("mailertable \(hit.location): \(hit.key) -> \(hit.value)")
            let pieces = hit.value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let mailer = String(pieces[0]).lowercasedASCII
            let rest = pieces.count > 1 ? String(pieces[1]) : ""
            switch mailer {
            case "error":
                return Self.errorTriple(rest, style: .mailertable)
            case "local":
                return MailerTriple(mailer: "local", host: fullUser, user: rest.isEmpty ? local.lowercasedASCII : rest)
            default:
                return MailerTriple(mailer: mailer, host: rest.isEmpty ? d : rest, user: fullUser)
            }
        }
        if !tables.smartHost.isEmpty {
            // sendmail's SMART_HOST: the relay mailer to that host.
            steps.append("smart_host: \(tables.smartHost)")
            return MailerTriple(mailer: "relay", host: tables.smartHost, user: fullUser)
        }
        return MailerTriple(mailer: "esmtp", host: d, user: fullUser)
    }

    /// The domain itself, then `.parent` for every parent (never the parent
    /// itself), then `.` for everything.
    func mailertableLookup(_ domain: String) -> MapHit? {
        guard !tables.mailertable.isEmpty else { return nil }
        if let hit = tables.mailertable.lookup(domain) { return hit }
        var labels = domain.split(separator: ".").map(String.init)
        while labels.count > 1 {
            labels.removeFirst()
            if let hit = tables.mailertable.lookup("." + labels.joined(separator: ".")) { return hit }
        }
        return tables.mailertable.lookup(".")
    }
}

extension String {
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty, contains(target) else { return self }
        var out = ""
        var rest = Substring(self)
        while let range = rest.range(of: target) {
            out += rest[..<range.lowerBound]
            out += replacement
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Substring.Index>? {
        guard !target.isEmpty, count >= target.count else { return nil }
        var start = startIndex
        while start < endIndex {
            if self[start...].hasPrefix(target) {
                return start..<index(start, offsetBy: target.count)
            }
            start = index(after: start)
        }
        return nil
    }
}
