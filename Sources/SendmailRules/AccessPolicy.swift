/// The client of an SMTP session, as sendmail's macros describe it.
public struct ClientInfo: Sendable, Equatable {
    /// How the reverse lookup of the address went (`${client_resolve}`).
    public enum Resolve: String, Sendable {
        case ok = "OK"
        case fail = "FAIL"
        case forged = "FORGED"
        case temp = "TEMP"
    }

    /// `192.0.2.1`, or `IPv6:2001:db8::1` (`${client_addr}`).
    public var address: String
    /// The host name, or `[address]` when there is none (`${client_name}`).
    public var name: String
    public var resolve: Resolve
    /// The user the client authenticated as (SMTP AUTH; sendmail's
    /// `${auth_authen}`), nil when it did not.
    public var authenticatedUser: String?

    public init(address: String, name: String, resolve: Resolve, authenticatedUser: String? = nil) {
        self.address = address
        self.name = name
        self.resolve = resolve
        self.authenticatedUser = authenticatedUser
    }
}

/// What a policy ruleset decided.
public enum PolicyDecision: Sendable, Equatable, CustomStringConvertible {
    /// Go on; the value found (OK, RELAY, ...) if any.
    case accept(String?)
    /// Refuse with this reply; a 4xx code makes it temporary.
    case reject(code: Int, enhanced: String?, text: String, statusWord: String? = nil)
    /// Accept, then throw away (for this recipient).
    case discard

    public var isAccept: Bool {
        if case .accept = self { return true }
        return false
    }

    /// sendmail's `-bt` rendering: `$# error $@ 5.7.1 $: "550 Access denied"`.
    public var description: String {
        switch self {
        case .accept(let value): return value ?? "OK"
        case .discard: return "$# discard $: discard"
        case .reject(let code, let enhanced, let text, let word):
            let status = enhanced ?? word
            return "$# error" + (status.map { " $@ \($0)" } ?? "") + " $: \"\(code) \(text)\""
        }
    }
}

/// sendmail's access_db checks with Debian's configuration (FEATURE(access_db)
/// with `skip`, and by default FEATURE(delay_checks, friend)): check_relay
/// for the client, check_mail for the sender, check_rcpt for each recipient.
///
/// Lookups go from the most specific key to the least: for a domain, the
/// domain and then each parent; for an IPv4 address, the address and then
/// each shorter prefix (`127.0.2`); for IPv6, colon by colon. At each step
/// the tagged key (`Connect:`, `From:`, `To:`) comes before the untagged one.
/// `SKIP` ends the search as if nothing was found.
public struct AccessPolicy: Sendable {
    public enum Stage: String, Sendable {
        case checkRelay = "check_relay"
        case checkMail = "check_mail"
        case checkRcpt = "check_rcpt"
    }

    public struct Outcome: Sendable {
        public var decision: PolicyDecision
        /// nil when everything was accepted.
        public var stage: Stage?
        public var steps: [String]
    }

    public let tables: RoutingTables
    public let delayChecks: Bool
    /// false: nothing about the client (its address, its name, `Connect:`
    /// entries) allows relaying, only the recipient's domain does (local,
    /// virtual, a relay domain, a `To:` RELAY entry). `sendmail -bs` run by a
    /// user other than root, whose client is this host.
    public let clientMayRelay: Bool

    public init(tables: RoutingTables, delayChecks: Bool = true, clientMayRelay: Bool = true) {
        self.tables = tables
        self.delayChecks = delayChecks
        self.clientMayRelay = clientMayRelay
    }

    var access: MapTable { tables.access }

    // MARK: Lookups

    func lookup(_ key: String, tag: String, untagged: Bool, steps: inout [String]) -> (MapHit?, stop: Bool) {
        if let hit = access.lookup("\(tag):\(key)") ?? (untagged ? access.lookup(key) : nil) {
            steps.append("access \(hit.location): \(hit.key) \(hit.value)")
            if hit.value.uppercased() == "SKIP" { return (nil, true) }
            return (hit, true)
        }
        return (nil, false)
    }

    /// A host or domain name, then its parents.
    func lookupDomain(_ name: String, tag: String, untagged: Bool = true, steps: inout [String]) -> MapHit? {
        guard !access.isEmpty else { return nil }
        var labels = RoutingTables.normalized(name).split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        while !labels.isEmpty {
            let (hit, stop) = lookup(labels.joined(separator: "."), tag: tag, untagged: untagged, steps: &steps)
            if stop { return hit }
            labels.removeFirst()
        }
        return nil
    }

    /// An address, then its prefixes: `192.0.2.1`, `192.0.2`, `192.0`, `192`;
    /// `IPv6:2001:db8::1`, `IPv6:2001:db8:`, ...
    func lookupAddress(_ address: String, tag: String, steps: inout [String]) -> MapHit? {
        guard !access.isEmpty else { return nil }
        var key = address.lowercasedASCII.hasPrefix("ipv6:") ? "IPv6:" + address.dropFirst(5) : address
        let separator: Character = key.hasPrefix("IPv6:") ? ":" : "."
        while !key.isEmpty && key != "IPv6" {
            let (hit, stop) = lookup(key, tag: tag, untagged: true, steps: &steps)
            if stop { return hit }
            guard let cut = key.lastIndex(of: separator) else { break }
            key = String(key[..<cut])
        }
        return nil
    }

    /// An e-mail address in sendmail's SearchList order: `user@domain`,
    /// then `user@`, then the domain and its parents.
    func lookupMailbox(_ parts: SendmailAddress.Parts, tag: String, untagged: Bool, steps: inout [String]) -> MapHit? {
        guard !access.isEmpty, let domain = parts.domain else { return nil }
        let local = SendmailAddress.dequote(parts.local)
        let (hit, stop) = lookup("\(local)@\(RoutingTables.normalized(domain))", tag: tag, untagged: untagged, steps: &steps)
        if stop { return hit }
        let (userHit, userStop) = lookup("\(local)@", tag: tag, untagged: untagged, steps: &steps)
        if userStop { return userHit }
        return lookupDomain(domain, tag: tag, untagged: untagged, steps: &steps)
    }

    /// What an access value means as a decision.
    static func decision(for value: String) -> PolicyDecision {
        let upper = value.uppercased()
        switch upper {
        case "OK", "RELAY": return .accept(upper)
        case "REJECT": return .reject(code: 550, enhanced: "5.7.1", text: "Access denied")
        case "DISCARD": return .discard
        default: break
        }
        if upper.hasPrefix("ERROR:") {
            var rest = String(value.dropFirst(6))
            var enhanced: String? = nil
            let fields = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            if fields.count == 2, fields[0].split(separator: ".").count == 3, fields[0].allSatisfy({ $0.isNumber || $0 == "." }) {
                enhanced = String(fields[0])
                rest = String(fields[1])
            }
            rest = rest.trimming()
            if rest.hasPrefix("\"") && rest.hasSuffix("\"") && rest.count >= 2 { rest = String(rest.dropFirst().dropLast()) }
            let words = rest.split(separator: " ", maxSplits: 1)
            if let first = words.first, first.count == 3, let code = Int(first), (400...599).contains(code) {
                return .reject(code: code, enhanced: enhanced, text: words.count > 1 ? String(words[1]) : "", statusWord: nil)
            }
            return .reject(code: 550, enhanced: enhanced, text: rest, statusWord: nil)
        }
        if upper.hasPrefix("QUARANTINE:") { return .accept("QUARANTINE") }
        // Any other right-hand side is an error text, as sendmail makes it.
        return .reject(code: 550, enhanced: nil, text: value, statusWord: nil)
    }

    // MARK: The rulesets

    /// check_relay: the client's name, then its address, with `Connect:`.
    public func checkRelay(_ client: ClientInfo) -> Traced<PolicyDecision> {
        var steps: [String] = []
        var hit: MapHit? = nil
        if !client.name.isEmpty {
            hit = lookupDomain(client.name, tag: "Connect", steps: &steps)
        }
        if hit == nil { hit = lookupAddress(client.address, tag: "Connect", steps: &steps) }
        guard let hit else {
            steps.append("check_relay: no access entry for \(client.name) [\(client.address)]")
            return Traced(value: .accept(nil), steps: steps)
        }
        return Traced(value: Self.decision(for: hit.value), steps: steps)
    }

    func isLocalClient(_ client: ClientInfo) -> Bool {
        ["", "0", "127.0.0.1", "IPv6:::1", "IPv6:0:0:0:0:0:0:0:1"].contains(client.address)
            || tables.isLocal(client.name)
    }

    /// check_mail: the null sender is always accepted; an unqualified sender
    /// only from this host; then `From:` lookups.
    public func checkMail(_ sender: String, client: ClientInfo) -> Traced<PolicyDecision> {
        var steps: [String] = []
        let spec = SendmailAddress.addrSpec(sender)
        if spec.isEmpty {
            steps.append("check_mail: the null sender is always accepted")
            return Traced(value: .accept(nil), steps: steps)
        }
        let parts: SendmailAddress.Parts
        do {
            parts = try SendmailAddress.parse(spec, stripsDomain: { tables.isLocal($0) })
        } catch {
            return Traced(value: .reject(code: error.code, enhanced: error.enhanced, text: error.text), steps: steps)
        }
        guard parts.domain != nil else {
            if isLocalClient(client) {
                steps.append("check_mail: unqualified sender from a local client")
                return Traced(value: .accept(nil), steps: steps)
            }
            return Traced(value: .reject(code: 553, enhanced: "5.5.4", text: "Domain name required for sender address \(spec)"),
                          steps: steps)
        }
        if let hit = lookupMailbox(parts, tag: "From", untagged: true, steps: &steps) {
            return Traced(value: Self.decision(for: hit.value), steps: steps)
        }
        steps.append("check_mail: no access entry for \(parts)")
        return Traced(value: .accept(nil), steps: steps)
    }

    /// check_rcpt: is relaying allowed for this recipient from this client,
    /// and then (with delay_checks) the sender's and the client's checks.
    public func checkRcpt(_ recipient: String, sender: String, client: ClientInfo) -> Traced<PolicyDecision> {
        var steps: [String] = []
        let spec = SendmailAddress.addrSpec(recipient)
        if spec.isEmpty {
            return Traced(value: .reject(code: 553, enhanced: nil, text: "User address required", statusWord: "nouser"), steps: steps)
        }
        let parts: SendmailAddress.Parts
        do {
            parts = try SendmailAddress.parse(spec, stripsDomain: { domain in
                tables.isLocal(domain) || tables.isRelayDomain(domain)
                    || lookupDomain(domain, tag: "To", steps: &steps)?.value.uppercased() == "RELAY"
            })
        } catch {
            return Traced(value: .reject(code: error.code, enhanced: error.enhanced, text: error.text), steps: steps)
        }
        let friend = delayChecks && isSpamFriend(parts, steps: &steps)
        let relay = relayVerdict(parts, client: client, steps: &steps)
        guard relay.isAccept else { return Traced(value: relay, steps: steps) }
        if delayChecks && !friend {
            let mail = checkMail(sender, client: client)
            steps += mail.steps
            if !mail.value.isAccept { return Traced(value: mail.value, steps: steps) }
            let connect = checkRelay(client)
            steps += connect.steps
            if !connect.value.isAccept { return Traced(value: connect.value, steps: steps) }
        }
        return Traced(value: relay, steps: steps)
    }

    /// delay_checks' `friend`: a recipient marked `Spam:... FRIEND` gets mail
    /// whatever the sender and client checks say.
    func isSpamFriend(_ parts: SendmailAddress.Parts, steps: inout [String]) -> Bool {
        guard !access.isEmpty, parts.domain != nil else { return false }
        let hit = lookupMailbox(parts, tag: "Spam", untagged: false, steps: &steps)
        return hit?.value.uppercased() == "FRIEND"
    }

    func relayVerdict(_ parts: SendmailAddress.Parts, client: ClientInfo, steps: inout [String]) -> PolicyDecision {
        guard let domain = parts.domain else {
            steps.append("check_rcpt: \(parts) is local (no domain)")
            return .accept(nil)
        }
        if tables.isLocal(domain) || tables.isVirtual(domain) {
            steps.append("check_rcpt: \(domain) is local")
            return .accept(nil)
        }
        if tables.isRelayDomain(domain) {
            steps.append("check_rcpt: \(domain) is a relay domain (class R)")
            return .accept("RELAY")
        }
        if let hit = lookupDomain(domain, tag: "To", steps: &steps), hit.value.uppercased() == "RELAY" {
            return .accept("RELAY")
        }
        if let user = client.authenticatedUser {
            // sendmail's TRUST_AUTH_MECH: an authenticated client may relay.
            steps.append("check_rcpt: the client authenticated as \(user)")
            return .accept("RELAY")
        }
        guard clientMayRelay else {
            steps.append("check_rcpt: \(domain) is not local, not a relay domain, and this client may not relay")
            return .reject(code: 550, enhanced: "5.7.1", text: "Relaying denied")
        }
        if ["", "0", "127.0.0.1", "IPv6:::1", "IPv6:0:0:0:0:0:0:0:1"].contains(client.address) {
            steps.append("check_rcpt: the client \(client.address) is this host")
            return .accept("RELAY")
        }
        if let hit = lookupAddress(client.address, tag: "Connect", steps: &steps), hit.value.uppercased() == "RELAY" {
            return .accept("RELAY")
        }
        if tables.isLocal("[\(client.address)]") {
            return .accept("RELAY")
        }
        steps.append("check_rcpt: \(domain) is not local, not a relay domain, and no access entry lets \(client.address) relay")
        switch client.resolve {
        case .temp, .forged, .fail:
            steps.append("check_rcpt: the client's reverse lookup gave \(client.resolve.rawValue): no relaying by name")
        case .ok:
            break
        }
        switch client.resolve {
        case .temp:
            return .reject(code: 450, enhanced: "4.4.0", text: "Relaying temporarily denied. Cannot resolve PTR record for \(client.address)")
        case .forged:
            return .reject(code: 550, enhanced: "5.7.1", text: "Relaying denied. IP name possibly forged \(client.name)")
        case .fail:
            return .reject(code: 550, enhanced: "5.7.1", text: "Relaying denied. IP name lookup failed \(client.name)")
        case .ok:
            break
        }
        if tables.isLocal(client.name) || tables.isRelayDomain(client.name) {
            steps.append("check_rcpt: the client's name \(client.name) is local or a relay domain")
            return .accept("RELAY")
        }
        if let hit = lookupDomain(client.name, tag: "Connect", steps: &steps), hit.value.uppercased() == "RELAY" {
            return .accept("RELAY")
        }
        steps.append("check_rcpt: relaying to \(domain) is not allowed for \(client.name) [\(client.address)]")
        return .reject(code: 550, enhanced: "5.7.1", text: "Relaying denied")
    }

    /// The whole SMTP outcome for one recipient, stage by stage.
    public func evaluate(client: ClientInfo, sender: String, recipient: String) -> Outcome {
        var steps: [String] = []
        if !delayChecks {
            let relay = checkRelay(client)
            steps += relay.steps
            if !relay.value.isAccept { return Outcome(decision: relay.value, stage: .checkRelay, steps: steps) }
            let mail = checkMail(sender, client: client)
            steps += mail.steps
            if !mail.value.isAccept { return Outcome(decision: mail.value, stage: .checkMail, steps: steps) }
        }
        let rcpt = checkRcpt(recipient, sender: sender, client: client)
        steps += rcpt.steps
        if !rcpt.value.isAccept { return Outcome(decision: rcpt.value, stage: .checkRcpt, steps: steps) }
        return Outcome(decision: rcpt.value, stage: nil, steps: steps)
    }
}
