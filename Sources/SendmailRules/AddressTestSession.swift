/// sendmail's address test mode (`sendmail -bt`), with the commands admins
/// use: `/parse ADDRESS`, `/map MAP KEY`, `.D{macro}value`, and the policy
/// rulesets `check_relay`, `check_mail ADDRESS`, `check_rcpt ADDRESS`.
/// Every decision lists the map entries (file and line) that made it: our
/// addition, sendmail never says why.
public struct AddressTestSession {
    public let router: Router
    public let policy: AccessPolicy
    var macros: [String: String] = [:]

    public init(tables: RoutingTables, delayChecks: Bool) {
        router = Router(tables: tables)
        policy = AccessPolicy(tables: tables, delayChecks: delayChecks)
    }

    public static let banner = ["ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)", "Enter <ruleset> <address>"]

    /// Output lines for one input line; nil means end the session.
    public mutating func execute(_ rawLine: String) -> [String]? {
        let line = rawLine.trimming()
        if line.isEmpty || line.hasPrefix("#") { return [] }
        if line.hasPrefix(".D") { defineMacro(String(line.dropFirst(2))); return [] }
        if line.hasPrefix(".C") { return [] }
        let (command, argument) = Self.split(line)
        switch command.lowercased() {
        case "/quit": return nil
        case "/parse": return parse(argument)
        case "/map": return map(argument)
        case "/help", "?":
            return ["Commands: /parse ADDRESS, /map MAPNAME KEY, .D{name}value, check_relay [NAME $| ADDRESS],",
                    "check_mail ADDRESS, check_rcpt ADDRESS, /quit (or end of input)"]
        case "check_relay", "oracle_check_relay":
            var client = currentClient()
            let parts = argument.components(separatedBy: "$|")
            if parts.count == 2 {
                client.name = parts[0].trimming()
                client.address = parts[1].trimming()
            }
            if policy.delayChecks {
                // FEATURE(delay_checks): the client is judged at check_rcpt.
                return report("check_relay", input: "\(client.name) $| \(client.address)",
                              Traced(value: .accept(nil), steps: ["check_relay: delayed to check_rcpt (smtpd_delay_checks = yes)"]))
            }
            return report("check_relay", input: "\(client.name) $| \(client.address)", policy.checkRelay(client))
        case "check_mail":
            return report("check_mail", input: argument, policy.checkMail(argument, client: currentClient()))
        case "check_rcpt":
            let sender = macros["mail_from"] ?? macros["f"].map { "<\($0)>" } ?? "<>"
            return report("check_rcpt", input: argument, policy.checkRcpt(argument, sender: sender, client: currentClient()))
        default:
            return ["Undefined ruleset \(command)"]
        }
    }

    static func split(_ line: String) -> (String, String) {
        guard let space = line.firstIndex(where: { $0 == " " || $0 == "\t" }) else { return (line, "") }
        return (String(line[..<space]), line[line.index(after: space)...].trimming())
    }

    mutating func defineMacro(_ text: String) {
        if text.hasPrefix("{"), let close = text.firstIndex(of: "}") {
            macros[String(text[text.index(after: text.startIndex)..<close])] = String(text[text.index(after: close)...])
        } else if let first = text.first {
            macros[String(first)] = String(text.dropFirst())
        }
    }

    func currentClient() -> ClientInfo {
        let address = macros["client_addr"] ?? "127.0.0.1"
        let name = macros["client_name"] ?? (address == "127.0.0.1" ? "localhost" : "[\(address)]")
        return ClientInfo(address: address, name: name,
                          resolve: ClientInfo.Resolve(rawValue: macros["client_resolve"] ?? "OK") ?? .ok)
    }

    func parse(_ address: String) -> [String] {
        var out = ["Cracked address = $g", "Parsing envelope recipient address"]
        let traced = router.route(address)
        out += traced.steps.map { "  \($0)" }
        if traced.value.isError, let text = traced.value.errorText {
            out.append("\(address)... \(text)")
        }
        out.append(traced.value.description)
        return out
    }

    func map(_ argument: String) -> [String] {
        let (name, key) = Self.split(argument)
        let table: MapTable?
        switch name.lowercased() {
        case "access": table = policy.tables.access
        case "virtuser", "virtusertable": table = policy.tables.virtusertable
        case "mailertable": table = policy.tables.mailertable
        case "domaintable": table = policy.tables.domaintable
        default: table = nil
        }
        guard let table else { return ["Map named \"\(name)\" not found"] }
        if let hit = table.lookup(key) {
            return ["map_lookup: \(name) (\(key)) returns \(hit.value) (0)", "  from \(hit.location)"]
        }
        return ["map_lookup: \(name) (\(key)) no match (67)"]
    }

    func report(_ ruleset: String, input: String, _ result: Traced<PolicyDecision>) -> [String] {
        let pad = String(repeating: " ", count: max(1, 18 - ruleset.count))
        var out = ["\(ruleset)\(pad) input: \(input)"]
        out += result.steps.map { "  \($0)" }
        out.append("\(ruleset)\(String(repeating: " ", count: max(1, 16 - ruleset.count))) returns: \(result.value)")
        return out
    }
}

extension String {
    func components(separatedBy separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let range = rest.range(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}
