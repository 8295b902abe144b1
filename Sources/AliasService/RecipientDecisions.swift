import HikyakuIPC
import MailCore
import SendmailRules

/// What aliasd answers, as pure functions of the maps: where a recipient
/// goes, whether smtpd may take it, and what an alias expands to.
public struct RecipientDecisions: Sendable {
    public var tables: RoutingTables
    public var aliases: AliasFile
    public var delayChecks: Bool
    /// false: the client cannot make relaying allowed (AccessPolicy);
    /// `sendmail -bs` for a user other than root.
    public var clientMayRelay: Bool
    /// An authenticated client may only send as addresses it owns
    /// (`smtpd_sender_login_check`).
    public var senderLoginCheck = true
    public var userExists: @Sendable (String) -> Bool

    public init(tables: RoutingTables, aliases: AliasFile, delayChecks: Bool = true, clientMayRelay: Bool = true,
                userExists: @escaping @Sendable (String) -> Bool) {
        self.tables = tables
        self.aliases = aliases
        self.delayChecks = delayChecks
        self.clientMayRelay = clientMayRelay
        self.userExists = userExists
    }

    public var router: Router { Router(tables: tables) }
    public var policy: AccessPolicy { AccessPolicy(tables: tables, delayChecks: delayChecks, clientMayRelay: clientMayRelay) }

    /// One level of an alias; `postmaster` is root when nothing else names it
    /// (RFC 5321 requires a postmaster).
    public func expand(_ name: String) -> [String]? {
        if let targets = aliases.lookup(name) { return targets }
        if name.asciiLowercased() == "postmaster" && !userExists("postmaster") { return ["root"] }
        return nil
    }

    /// A local name exists when it is an alias or a user, or is `user+detail`
    /// for such a user.
    public func localNameExists(_ name: String) -> Bool {
        var key = name.hasPrefix("\\") ? String(name.dropFirst()) : name
        key = key.asciiLowercased()
        if key == "postmaster" || expand(key) != nil || userExists(key) { return true }
        let (user, detail) = SendmailAddress.splitDetail(key)
        return detail != nil && (expand(user) != nil || userExists(user))
    }

    public func resolve(_ address: String) -> (AliasProtocol.Resolution, steps: [String]) {
        let traced = router.route(address)
        let triple = traced.value
        switch triple.mailer {
        case "local":
            let user = triple.user
            let exists = localNameExists(user)
            return (AliasProtocol.Resolution(routeClass: exists ? .local : .unknownLocal, localUser: user,
                                             mailer: "local", user: user), traced.steps)
        case "*error*":
            // The text keeps a reply code the map gave (551, 553...).
            let text = triple.user.hasPrefix("\"") ? (triple.errorText ?? triple.user) : triple.user
            return (AliasProtocol.Resolution(routeClass: .error, mailer: triple.mailer, user: triple.user,
                                             status: triple.errorStatus, text: text), traced.steps)
        default:
            return (AliasProtocol.Resolution(routeClass: .remote, nexthop: triple.host ?? "", mailer: triple.mailer,
                                             user: triple.user), traced.steps)
        }
    }

    static func client(_ request: AliasProtocol.RecipientCheck) -> ClientInfo {
        ClientInfo(address: request.clientAddress, name: request.clientName,
                   resolve: ClientInfo.Resolve(rawValue: request.clientResolve) ?? .ok,
                   authenticatedUser: request.authenticatedUser.isEmpty ? nil : request.authenticatedUser)
    }

    /// Whether an authenticated user may send as `sender` (Postfix's
    /// reject_sender_login_mismatch): the null sender, the user's own name,
    /// or an address of a local or virtual domain whose route ends at the
    /// user (`user`, `user+detail`, a virtusertable entry naming the user).
    public func senderOwned(_ sender: String, by user: String) -> Bool {
        if sender.isEmpty || sender.asciiLowercased() == user.asciiLowercased() { return true }
        guard let at = sender.lastIndex(of: "@") else { return false }
        let domain = String(sender[sender.index(after: at)...])
        guard tables.isLocal(domain) || tables.isVirtual(domain) else { return false }
        let (resolution, _) = resolve(sender)
        guard resolution.routeClass == .local else { return false }
        let (local, _) = SendmailAddress.splitDetail(resolution.localUser.asciiLowercased())
        return local == user.asciiLowercased() || resolution.localUser.asciiLowercased() == user.asciiLowercased()
    }

    /// The refusal for a sender an authenticated user does not own.
    func loginMismatch(_ request: AliasProtocol.RecipientCheck) -> AliasProtocol.RecipientVerdict? {
        guard senderLoginCheck, !request.authenticatedUser.isEmpty,
              !senderOwned(request.sender, by: request.authenticatedUser) else { return nil }
        return .reject(SMTPReply(553, EnhancedStatusCode(5, 7, 1),
                                 "<\(request.sender)>: Sender address rejected: not owned by user \(request.authenticatedUser)"))
    }

    /// smtpd's MAIL decision without delay_checks: check_relay for the
    /// client, then check_mail for the sender.
    public func checkSender(_ request: AliasProtocol.RecipientCheck) -> (AliasProtocol.RecipientVerdict, steps: [String]) {
        if let refusal = loginMismatch(request) { return (refusal, ["the sender is not the authenticated user's"]) }
        let client = Self.client(request)
        let connect = policy.checkRelay(client)
        var steps = connect.steps
        var decision = connect.value
        if decision.isAccept {
            let mail = policy.checkMail(request.sender.isEmpty ? "<>" : "<\(request.sender)>", client: client)
            steps += mail.steps
            decision = mail.value
        }
        return (verdict(decision, address: request.sender), steps)
    }

    func verdict(_ decision: PolicyDecision, address: String) -> AliasProtocol.RecipientVerdict {
        switch decision {
        case .accept: return .accept
        case .discard: return .discard
        case .reject(let code, let enhanced, let text, let word):
            let status = enhanced.flatMap { EnhancedStatusCode(parsing: $0) }
                ?? (word == "nouser" ? EnhancedStatusCode(5, 1, 1) : EnhancedStatusCode(code / 100, 0, 0))
            return .reject(SMTPReply(code, status, "<\(address)>... \(text)"))
        }
    }

    /// smtpd's RCPT decision: sendmail's access checks, then the recipient's
    /// route. Replies carry the address as sendmail's do: `<addr>... text`.
    public func check(_ request: AliasProtocol.RecipientCheck) -> (AliasProtocol.RecipientVerdict, steps: [String]) {
        if let refusal = loginMismatch(request) { return (refusal, ["the sender is not the authenticated user's"]) }
        let client = Self.client(request)
        let sender = request.sender.isEmpty ? "<>" : "<\(request.sender)>"
        let outcome = policy.evaluate(client: client, sender: sender, recipient: "<\(request.recipient)>")
        var steps = outcome.steps
        // Without delay_checks smtpd asked about client and sender at MAIL.
        let decision = delayChecks ? outcome.decision : policy.checkRcpt("<\(request.recipient)>", sender: sender, client: client).value
        guard decision.isAccept else { return (verdict(decision, address: request.recipient), steps) }
        let (resolution, routeSteps) = resolve(request.recipient)
        steps += routeSteps
        switch resolution.routeClass {
        case .local, .remote:
            return (.accept, steps)
        case .unknownLocal:
            return (.reject(SMTPReply(550, EnhancedStatusCode(5, 1, 1), "<\(request.recipient)>... User unknown")), steps)
        case .error:
            let (code, text) = Self.splitCode(resolution.text, fallback: resolution.status.hasPrefix("4") ? 450 : 550)
            return (.reject(SMTPReply(code, EnhancedStatusCode(parsing: resolution.status) ?? EnhancedStatusCode(5, 0, 0),
                                      "<\(request.recipient)>... \(text)")), steps)
        }
    }

    /// `550 text` gives 550 and `text`; text without a code keeps it whole.
    static func splitCode(_ text: String, fallback: Int) -> (Int, String) {
        let words = text.split(separator: " ", maxSplits: 1)
        if let first = words.first, first.count == 3, let code = Int(first), (400...599).contains(code) {
            return (code, words.count > 1 ? String(words[1]) : "")
        }
        return (fallback, text)
    }
}
