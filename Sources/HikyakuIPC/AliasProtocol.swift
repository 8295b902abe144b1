import MailCore

/// Messages to aliasd (private/aliasd), the one reader of maps.
///
/// - `resolve`: where a recipient goes (sendmail's ruleset 0: domaintable,
///   local domains, virtusertable, mailertable), and for local recipients
///   whether the user or alias exists.
/// - `checkRecipient`: smtpd's RCPT decision with sendmail's access rules
///   (client, sender and recipient), then the same resolution.
/// - `expand`: one level of an alias (local does the recursion, so each
///   level can be handled with its own owner's privileges).
public enum AliasProtocol {
    public enum RouteClass: String, Sendable {
        /// Delivered here: a user or alias that exists.
        case local
        /// Addressed to a local domain, but no such user or alias.
        case unknownLocal = "unknown_local"
        /// Delivered elsewhere, by `mailer` to `nexthop`.
        case remote
        /// An `error:` result of virtusertable or mailertable, or bad syntax.
        case error
    }

    public struct Resolution: Equatable, Sendable {
        public var routeClass: RouteClass
        /// For local recipients: the user (or alias) to deliver to.
        public var localUser: String
        /// For remote recipients: the host (or domain) to deliver to.
        public var nexthop: String
        /// sendmail's mailer name: local, esmtp, smtp, relay, *error*.
        public var mailer: String
        /// The address the mailer gets.
        public var user: String
        /// For errors: the enhanced status and the text.
        public var status: String
        public var text: String

        public init(routeClass: RouteClass, localUser: String = "", nexthop: String = "", mailer: String = "",
                    user: String = "", status: String = "", text: String = "") {
            self.routeClass = routeClass
            self.localUser = localUser
            self.nexthop = nexthop
            self.mailer = mailer
            self.user = user
            self.status = status
            self.text = text
        }

        public var frame: IPCFrame {
            var f = IPCFrame(.aliasResolveReply)
            f.add(.routeClass, routeClass.rawValue)
            f.add(.localUser, localUser)
            f.add(.nexthop, nexthop)
            f.add(.mailer, mailer)
            f.add(.address, user)
            f.add(.enhancedStatus, status)
            f.add(.text, text)
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .aliasResolveReply else { throw .unexpectedMessage(frame.type.rawValue) }
            guard let routeClass = RouteClass(rawValue: try frame.require(.routeClass)) else {
                throw .missingAttribute(key: IPCKey.routeClass.rawValue, type: frame.type.rawValue)
            }
            self.routeClass = routeClass
            localUser = frame.string(.localUser) ?? ""
            nexthop = frame.string(.nexthop) ?? ""
            mailer = frame.string(.mailer) ?? ""
            user = frame.string(.address) ?? ""
            status = frame.string(.enhancedStatus) ?? ""
            text = frame.string(.text) ?? ""
        }
    }

    public static func resolveRequest(_ address: String) -> IPCFrame {
        var f = IPCFrame(.aliasResolve)
        f.add(.address, address)
        return f
    }

    public static func expandRequest(_ localPart: String) -> IPCFrame {
        var f = IPCFrame(.aliasExpand)
        f.add(.address, localPart)
        return f
    }

    public struct Expansion: Equatable, Sendable {
        /// nil when the name is not an alias.
        public var targets: [String]?
        /// What aliasd answered, with the same maps, for targets it was
        /// going to be asked about next: local expanding a list of fifty
        /// users asks once, not a hundred and one times.
        public var hints: [Hint]

        /// The most hint bytes one reply carries (a frame is at most
        /// ``IPCFrame/maximumFrameSize``); targets past it are asked about.
        public static let hintBudget = 256 * 1024

        public init(targets: [String]?, hints: [Hint] = []) {
            self.targets = targets
            self.hints = hints
        }

        public var frame: IPCFrame {
            var f = IPCFrame(.aliasExpandReply)
            f.add(.found, targets != nil)
            for t in targets ?? [] { f.add(.target, t) }
            var budget = Self.hintBudget
            for hint in hints {
                let bytes = hint.frame.encoded()
                budget -= bytes.count
                guard budget >= 0 else { break }
                f.add(.hint, bytes: bytes)
            }
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .aliasExpandReply else { throw .unexpectedMessage(frame.type.rawValue) }
            targets = (frame.bool(.found) ?? false) ? frame.strings(.target) : nil
            hints = []
            for attribute in frame.attributes where attribute.key == .hint {
                // A hint is one whole frame, nothing before or after it.
                guard let (inner, used) = try IPCFrame.decode(attribute.value), used == attribute.value.count else {
                    throw .truncatedAttribute
                }
                hints.append(try Hint(frame: inner))
            }
        }
    }

    /// One target of an expansion as aliasd resolves it (`resolve` asked
    /// with exactly `target`), and, for a local one, whether the user it
    /// names is not an alias itself (`expand` asked with exactly
    /// `notAlias`).
    public struct Hint: Equatable, Sendable {
        public var target: String
        public var resolution: Resolution
        public var notAlias: String?

        public init(target: String, resolution: Resolution, notAlias: String?) {
            self.target = target
            self.resolution = resolution
            self.notAlias = notAlias
        }

        var frame: IPCFrame {
            var f = resolution.frame
            f.add(.target, target)
            if let notAlias { f.add(.notAlias, notAlias) }
            return f
        }

        init(frame: IPCFrame) throws(IPCError) {
            resolution = try Resolution(frame: frame)
            target = try frame.require(.target)
            notAlias = frame.string(.notAlias)
        }
    }

    /// smtpd's question for one RCPT.
    public struct RecipientCheck: Equatable, Sendable {
        public var clientAddress: String
        public var clientName: String
        /// OK, FAIL, FORGED or TEMP, as sendmail's `${client_resolve}`.
        public var clientResolve: String
        /// The MAIL FROM address, without brackets; empty for `<>`.
        public var sender: String
        public var recipient: String
        /// The user the client authenticated as (SMTP AUTH); empty if none.
        public var authenticatedUser: String

        public init(clientAddress: String, clientName: String, clientResolve: String, sender: String, recipient: String,
                    authenticatedUser: String = "") {
            self.clientAddress = clientAddress
            self.clientName = clientName
            self.clientResolve = clientResolve
            self.sender = sender
            self.recipient = recipient
            self.authenticatedUser = authenticatedUser
        }

        /// The question for one RCPT; with `forSender`, the question at MAIL
        /// about the client and the sender (the reply is the same message).
        public func frame(forSender: Bool = false) -> IPCFrame {
            frame(type: forSender ? .aliasCheckSender : .aliasCheckRecipient)
        }

        /// The same question as another request: `.aliasCheckClient` asks
        /// about the client alone.
        public func frame(type: IPCMessageType) -> IPCFrame {
            var f = IPCFrame(type)
            f.add(.clientAddress, clientAddress)
            f.add(.clientName, clientName)
            f.add(.clientResolve, clientResolve)
            f.add(.sender, sender)
            f.add(.recipient, recipient)
            if !authenticatedUser.isEmpty { f.add(.authenticatedUser, authenticatedUser) }
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .aliasCheckRecipient || frame.type == .aliasCheckSender || frame.type == .aliasCheckClient else {
                throw .unexpectedMessage(frame.type.rawValue)
            }
            clientAddress = try frame.require(.clientAddress)
            clientName = frame.string(.clientName) ?? ""
            clientResolve = frame.string(.clientResolve) ?? "OK"
            sender = frame.string(.sender) ?? ""
            recipient = frame.string(.recipient) ?? ""
            authenticatedUser = frame.string(.authenticatedUser) ?? ""
        }
    }

    /// aliasd's answer: accept, refuse with a reply, or accept and discard.
    public enum RecipientVerdict: Equatable, Sendable {
        case accept
        case reject(SMTPReply)
        case discard

        public func frame(explanation: [String] = []) -> IPCFrame {
            var f = IPCFrame(.aliasCheckRecipientReply)
            switch self {
            case .accept: f.add(.verdict, "accept")
            case .discard: f.add(.verdict, "discard")
            case .reject(let reply):
                f.add(.verdict, "reject")
                f.add(.replyCode, reply.code)
                if let enhanced = reply.enhanced { f.add(.enhancedStatus, enhanced.description) }
                f.add(.text, reply.lines.joined(separator: " "))
            }
            for line in explanation { f.add(.target, line) }
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .aliasCheckRecipientReply else { throw .unexpectedMessage(frame.type.rawValue) }
            switch try frame.require(.verdict) {
            case "accept": self = .accept
            case "discard": self = .discard
            default:
                let code = try frame.requireInt(.replyCode)
                let enhanced = frame.string(.enhancedStatus).flatMap { EnhancedStatusCode(parsing: $0) }
                self = .reject(SMTPReply(code, enhanced, frame.string(.text) ?? ""))
            }
        }
    }

    /// aliasd's answer to a client check asked before the client's name
    /// was known, when the rules need the name: ask again with it.
    public static func clientNameNeeded() -> IPCFrame {
        var f = IPCFrame(.aliasCheckRecipientReply)
        f.add(.verdict, "needname")
        return f
    }

    public static func isClientNameNeeded(_ frame: IPCFrame) -> Bool {
        frame.type == .aliasCheckRecipientReply && frame.string(.verdict) == "needname"
    }

    /// domaintable's entries, for cleanup's header rewriting (the table is
    /// small; cleanup asks again every few seconds).
    public static func domainTableReply(_ table: [String: String]) -> IPCFrame {
        var f = IPCFrame(.aliasDomainTableReply)
        for key in table.keys.sorted() {
            f.add(.address, key)
            f.add(.nexthop, table[key]!)
        }
        return f
    }

    public static func domainTable(from frame: IPCFrame) throws(IPCError) -> [String: String] {
        guard frame.type == .aliasDomainTableReply else { throw .unexpectedMessage(frame.type.rawValue) }
        let keys = frame.strings(.address)
        let values = frame.strings(.nexthop)
        guard keys.count == values.count else { throw .missingAttribute(key: IPCKey.nexthop.rawValue, type: frame.type.rawValue) }
        return Dictionary(zip(keys, values), uniquingKeysWith: { first, _ in first })
    }

    /// A submitter, by uid: the login name, and whether they may set
    /// another sender with -f (root, the mail owner, trusted-users).
    public struct User: Equatable, Sendable {
        public var name: String
        public var trusted: Bool

        public init(name: String, trusted: Bool) {
            self.name = name
            self.trusted = trusted
        }

        public static func request(uid: Int) -> IPCFrame {
            var f = IPCFrame(.aliasUser)
            f.add(.size, uid)
            return f
        }

        public var frame: IPCFrame {
            var f = IPCFrame(.aliasUserReply)
            f.add(.localUser, name)
            f.add(.found, trusted)
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .aliasUserReply else { throw .unexpectedMessage(frame.type.rawValue) }
            name = try frame.require(.localUser)
            trusted = frame.bool(.found) ?? false
        }
    }

    public static func errorFrame(_ text: String) -> IPCFrame {
        var f = IPCFrame(.error)
        f.add(.text, text)
        return f
    }
}
