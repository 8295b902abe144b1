#if canImport(Glibc)
import Glibc
#endif
import CShims
import DaemonSkeleton
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import Logging
import MailCore
import QueueFormat
import SendmailRules

/// local - the local delivery agent
///
/// Description: delivers queued mail for local recipients. It expands
/// aliases (asking aliasd, one level at a time, with loop detection and
/// duplicate removal), then writes each message into the user's mailbox:
/// an mbox file in `mail_spool_directory` (dotlock and fcntl locking, the
/// `From ` line, `>From ` quoting, a blank line after each message) or a
/// Maildir under the home directory when `home_mailbox` ends in `/`.
/// Recipients of an alias that lives elsewhere are re-sent through cleanup.
///
/// Security: the one daemon besides the master that keeps root, and only to
/// become each recipient: every mailbox is opened and written with the
/// recipient's effective uid (and the mail spool's group, which the spool
/// directory needs), never root's, except for root's own mailbox. The
/// process is single-threaded, which the identity switch checks each time.
/// Mailboxes that are symlinks, have several links or belong to someone else
/// are refused.
///
/// Configuration: `mail_spool_directory`, `home_mailbox`,
/// `mailbox_lock_timeout`, `myhostname`, `local_process_limit` (master).
///
/// See also: qmgr(8), aliasd(8), aliases(5).
public final class LocalDeliveryAgent {
    let context: DaemonContext
    let logger: Logger
    let hostname: String
    let spoolDirectory: String
    let homeMailbox: String
    let writer: MailboxWriter
    let realSpool: SpoolLayout
    /// Recipients' passwd entries and groups, for ten seconds.
    let users = UserCache()
    var aliasConnection: BlockingIPCConnection? = nil
    var draining = false

    init(context: DaemonContext) {
        self.context = context
        logger = context.logger
        let config = context.configuration
        hostname = config.string("myhostname")
        spoolDirectory = config.string("mail_spool_directory")
        homeMailbox = config.string("home_mailbox")
        writer = MailboxWriter(lockTimeout: Double(max(1, config.seconds("mailbox_lock_timeout"))), hostname: hostname)
        realSpool = SpoolLayout(root: context.spoolPath)
    }

    public static func main() -> Never {
        DaemonSkeleton.main(program: "local", privilege: .root) { _ in () } serve: { context, _ in
            let agent = LocalDeliveryAgent(context: context)
            agent.serve()
        }
    }

    // MARK: Serving

    func serve() {
        let listenFD = context.listenFD()
        // Several local processes wait on one socket: when a connection
        // comes, all wake and one wins; the others must not block in accept.
        _ = hk_set_nonblocking(listenFD, 1)
        MasterControl.announceReady(context)
        while !draining {
            guard waitForInput(listenFD) else { break }
            let connection = accept4Compat(listenFD)
            guard connection >= 0 else { continue }
            serveConnection(BlockingIPCConnection(fd: connection, path: "private/local", timeout: 60))
        }
    }

    func accept4Compat(_ fd: Int32) -> Int32 {
        let client = accept(fd, nil, nil)
        if client >= 0 {
            ProcessSpawnerCloexec.set(client)
            _ = hk_set_nonblocking(client, 0)
        }
        return client
    }

    /// Waits for `fd` or a master request; false when it is time to exit.
    func waitForInput(_ fd: Int32) -> Bool {
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        if let control = context.controlFD { fds.append(pollfd(fd: control, events: Int16(POLLIN), revents: 0)) }
        while true {
            let rc = poll(&fds, nfds_t(fds.count), -1)
            if rc < 0 && errno == EINTR { continue }
            if fds.count > 1 && fds[1].revents != 0 {
                var byte: UInt8 = 0
                let n = read(fds[1].fd, &byte, 1)
                switch n <= 0 ? .stop : MasterRequest(controlByte: byte) {
                case .stop:
                    exit(0)
                case .drain:
                    // Reload: no delivery is in progress here; go now.
                    draining = true
                    return false
                case nil:
                    break
                }
                fds[1].revents = 0
                if fds[0].revents == 0 { continue }
            }
            return fds[0].revents != 0
        }
    }

    func serveConnection(_ connection: BlockingIPCConnection) {
        while waitForInput(connection.fd) {
            let frame: IPCFrame?
            do {
                frame = try connection.receive(timeout: 60)
            } catch {
                logger.warning("qmgr connection: \(error)")
                return
            }
            guard let frame else { return }
            let request: LocalProtocol.Request
            do {
                request = try LocalProtocol.Request(frame: frame)
            } catch {
                logger.warning("bad request from qmgr: \(error)")
                return
            }
            // A request from a qmgr that has died since (killed, restarted):
            // the next qmgr delivers the message; doing it here too would
            // deliver it twice.
            guard !connection.peerHasClosed else {
                logger.info("\(request.queueID): qmgr went away before the delivery started; left to the next qmgr")
                return
            }
            let result = deliver(request)
            do {
                try connection.send(result.frame)
            } catch {
                logger.warning("cannot answer qmgr: \(error)")
                return
            }
        }
    }

    // MARK: Delivery

    /// RFC 3461 parameters of the message being delivered, as its queue file
    /// has them: what forwarded copies inherit.
    struct MessageDSN {
        var ret: DSNReturn?
        var envelopeID: String?
        var recipients: [RecipientDSN]

        /// The queue file's own, read with its hold.
        init(_ envelope: QueueEnvelope) {
            ret = envelope.dsnReturn
            envelopeID = envelope.dsnEnvelopeID
            recipients = envelope.recipients.map(\.dsn)
        }

        func recipient(_ index: Int) -> RecipientDSN {
            recipients.indices.contains(index) ? recipients[index] : RecipientDSN()
        }
    }

    /// Delivers to every recipient of the request, marking each delivered
    /// one in the queue file at once (QueueFileHold).
    func deliver(_ request: LocalProtocol.Request) -> LocalProtocol.Result {
        let path = realSpool.file(.active, request.queueID.rawValue)
        let content: [UInt8]
        let dsn: MessageDSN
        let hold: QueueFileHold
        do {
            hold = try QueueFileHold(path: path, contentOffset: request.contentOffset)
            content = try FileIO.pread(hold.fd, count: request.contentLength, at: request.contentOffset, path: path)
            dsn = MessageDSN(hold.envelope)
        } catch {
            logger.warning("\(request.queueID): cannot read queue file: \(error)")
            let outcome = DeliveryOutcome.deferred(EnhancedStatusCode(4, 3, 0), "cannot read queue file: \(error)")
            return LocalProtocol.Result(outcomes: request.recipients.map { ($0.index, outcome) })
        }
        var outcomes: [(Int, DeliveryOutcome)] = []
        var actions: [Int: DeliveryStatusNotification.Action] = [:]
        for recipient in request.recipients {
            let (outcome, action) = deliver(recipient, of: request, content: content, dsn: dsn)
            outcomes.append((recipient.index, outcome))
            if case .delivered = outcome {
                actions[recipient.index] = action
                do {
                    try hold.markDelivered(recipient.index)
                } catch {
                    logger.warning("\(request.queueID): cannot mark the delivery in the queue file: \(error)")
                }
            }
        }
        return LocalProtocol.Result(outcomes: outcomes, actions: actions)
    }

    /// The outcome for one recipient, and for a delivered one the RFC 3464
    /// action a success report names: `delivered` for its own mailbox (and
    /// for a list with an owner-, which is where the sender's mail ends),
    /// `expanded` for an alias or .forward, whose targets carry on with the
    /// NOTIFY and ORCPT of the recipient minus SUCCESS (RFC 3461 section
    /// 6.2.7, as Postfix's local does).
    func deliver(_ recipient: LocalProtocol.Recipient, of request: LocalProtocol.Request, content: [UInt8],
                 dsn message: MessageDSN) -> (DeliveryOutcome, DeliveryStatusNotification.Action) {
        guard let address = try? MailAddress.parseMailbox(Substring(recipient.address)) else {
            let outcome = DeliveryOutcome.bounced(EnhancedStatusCode(5, 1, 3), "bad recipient address syntax")
            log(request, to: recipient.address, original: "", outcome)
            return (outcome, .failed)
        }
        // qmgr passes what the address resolved to (virtusertable may name
        // another user); without it, the local part.
        let name = recipient.localUser.isEmpty ? address.localPartKey : recipient.localUser
        let leaves: [AliasExpansion.Leaf]
        do {
            leaves = try expansion().expand(name, display: recipient.address)
        } catch {
            let outcome: DeliveryOutcome
            switch error {
            case .loop(let chain):
                outcome = .bounced(EnhancedStatusCode(5, 4, 6), "aliasing/forwarding loop broken (\(chain))")
            case .lookupFailed(let why):
                outcome = .deferred(EnhancedStatusCode(4, 3, 0), "alias lookup failed: \(why)")
            }
            log(request, to: recipient.address, original: "", outcome)
            return (outcome, .failed)
        }
        let direct: Bool
        if leaves.count == 1, case .mailbox(let user, _) = leaves[0], user == name.asciiLowercased() { direct = true } else { direct = false }
        // sendmail's owner-LIST: mail expanded from LIST goes out with
        // owner-LIST as its envelope sender, so errors reach the list owner.
        var sender = request.sender
        var forwarding = Forwarding(ret: message.ret, envelopeID: message.envelopeID,
                                    recipient: message.recipient(recipient.index).inheritedByExpansion)
        var listOwner = false
        if !direct, !sender.isEmpty, (try? lookupAlias("owner-" + name.asciiLowercased())) ?? nil != nil {
            sender = "owner-\(name.asciiLowercased())@\(hostname)"
            // A list's mail is new mail from its owner: the sender's ENVID,
            // RET and ORCPT do not go with it (RFC 3461 section 6.2.7.4).
            listOwner = true
            forwarding = Forwarding(ret: nil, envelopeID: nil, recipient: RecipientDSN(notify: forwarding.recipient.notify))
        }
        var firstDeferred: DeliveryOutcome? = nil
        var firstBounced: DeliveryOutcome? = nil
        var lastDelivered: DeliveryOutcome? = nil
        // Members delivered on an earlier try of this recipient (MemberJournal).
        let journal = leaves.count > 1 ? MemberJournal(path: realSpool.deliveredMembersFile(request.queueID.rawValue),
                                                       recipient: recipient.index) : nil
        let deliveredBefore = journal?.delivered() ?? []
        for leaf in leaves {
            let member = journal == nil ? nil : MemberJournal.key(leaf)
            if let member, deliveredBefore.contains(member) { continue }
            // A direct recipient keeps its address in Delivered-To and the
            // log; an alias member is named user@myhostname, as Postfix does.
            let (finalAddress, outcome) = deliver(leaf, directAddress: direct ? recipient.address.asciiLowercased() : nil,
                                                  recipient: recipient, sender: sender, forwarding: forwarding,
                                                  content: content)
            log(request, to: finalAddress, original: direct ? "" : recipient.address, outcome)
            if case .delivered = outcome, let journal, let member {
                do {
                    try journal.record(member)
                } catch {
                    logger.warning("\(request.queueID): cannot note the delivery to \(finalAddress): \(error)")
                }
            }
            switch outcome {
            case .delivered: lastDelivered = outcome
            case .deferred: if firstDeferred == nil { firstDeferred = outcome }
            case .bounced:
                if firstBounced == nil {
                    firstBounced = direct ? outcome : .bounced(outcome.status, "\(finalAddress): \(outcome.text)")
                }
            }
        }
        if let firstDeferred { return (firstDeferred, .delayed) }
        if let firstBounced { return (firstBounced, .failed) }
        if direct, let lastDelivered { return (lastDelivered, .delivered) }
        return (.delivered(EnhancedStatusCode(2, 0, 0), "alias expanded"), listOwner ? .delivered : .expanded)
    }

    /// What a copy sent on to another address carries (RFC 3461).
    struct Forwarding {
        var ret: DSNReturn?
        var envelopeID: String?
        var recipient: RecipientDSN
    }

    func deliver(_ leaf: AliasExpansion.Leaf, directAddress: String?, recipient: LocalProtocol.Recipient,
                 sender: String, forwarding: Forwarding, content: [UInt8]) -> (String, DeliveryOutcome) {
        switch leaf {
        case .mailbox(let user, _):
            let recipientAddress = directAddress ?? "\(user)@\(hostname)"
            return (recipientAddress, deliverToUser(user, address: recipientAddress, sender: sender, content: content))
        case .remote(let address, _, _):
            return (address, forward(to: address, sender: sender, dsn: forwarding, content: content))
        case .file(let path, let source):
            return (path, deliverToFile(path, source: source, recipient: recipient.address, sender: sender, content: content))
        case .pipe(let command, let source):
            return (command, deliverToCommand(command, source: source, recipient: recipient.address, sender: sender, content: content))
        case .error(let display, let text, let status):
            let code = EnhancedStatusCode(parsing: status) ?? EnhancedStatusCode(5, 0, 0)
            return (display, code.isTransient ? .deferred(code, text) : .bounced(code, text))
        }
    }

    func deliverToUser(_ name: String, address recipientAddress: String, sender: String, content: [UInt8]) -> DeliveryOutcome {
        guard let user = users.user(named: name) else {
            return .bounced(EnhancedStatusCode(5, 1, 1), "unknown user: \"\(name)\"")
        }
        if MailboxFormat.hasDeliveredTo(recipientAddress, in: content) {
            return .bounced(EnhancedStatusCode(5, 4, 6), "mail forwarding loop for \(recipientAddress)")
        }
        if !homeMailbox.isEmpty {
            let path = user.home + "/" + homeMailbox
            let file = MailboxFormat.maildirFile(sender: sender, recipient: recipientAddress, content: content)
            if homeMailbox.hasSuffix("/") {
                return asUser(user, group: nil) { writer.deliverMaildir(directory: path, file: file) }
            }
            let entry = MailboxFormat.mboxEntry(sender: sender, recipient: recipientAddress,
                                                date: WallClock.localTime(WallClock.seconds()), content: content)
            return asUser(user, group: nil) { writer.appendMbox(path: path, entry: entry, expectedOwner: effectiveOwner(user)) }
        }
        let path = spoolDirectory + "/" + name
        let entry = MailboxFormat.mboxEntry(sender: sender, recipient: recipientAddress,
                                            date: WallClock.localTime(WallClock.seconds()), content: content)
        return asUser(user, group: spoolGroup()) { writer.appendMbox(path: path, entry: entry, expectedOwner: effectiveOwner(user)) }
    }

    /// Without privilege separation everything is written as ourselves.
    func effectiveOwner(_ user: PasswdEntry) -> uid_t {
        context.privilegeSeparated ? user.uid : geteuid()
    }

    /// The mail spool's group when the spool is group-writable (Debian's
    /// /var/mail is root:mail 2775): delivery needs it to create files and
    /// lock files there, as setgid-mail mail programs do.
    func spoolGroup() -> gid_t? {
        guard let st = FileIO.stat(spoolDirectory) else { return nil }
        if st.st_mode & S_IWGRP != 0 && st.st_mode & S_IWOTH == 0 { return st.st_gid }
        return nil
    }

    func asUser(_ user: PasswdEntry, group: gid_t?, _ body: () -> DeliveryOutcome) -> DeliveryOutcome {
        guard context.privilegeSeparated else { return body() }
        var identity = users.identity(of: user)
        if let group {
            identity.gid = group
            if !identity.groups.contains(group) { identity.groups.append(group) }
        }
        do {
            return try Privilege.withEffectiveIdentity(identity, body)
        } catch {
            return .deferred(EnhancedStatusCode(4, 3, 0), "cannot become \(user.name): \(error)")
        }
    }

    /// Re-sends the message to an address elsewhere, as a new queue file.
    func forward(to address: String, sender: String, dsn: Forwarding, content: [UInt8]) -> DeliveryOutcome {
        do {
            let connection = try BlockingIPCConnection(connectingTo: realSpool.socket(.cleanup), timeout: 60)
            var begin = CleanupProtocol.Begin(origin: .forward, sender: sender, recipients: [address])
            begin.ret = dsn.ret?.rawValue ?? ""
            begin.envid = dsn.envelopeID ?? ""
            begin.recipientDSN = [dsn.recipient]
            guard case .ok = try CleanupProtocol.Reply(frame: try connection.request(begin.frame)) else {
                return .deferred(EnhancedStatusCode(4, 3, 0), "cannot forward: cleanup refused the message")
            }
            var start = 0
            while start < content.count {
                let end = min(content.count, start + IPCFrame.maximumChunk)
                try connection.send(CleanupProtocol.content(Array(content[start..<end])))
                start = end
            }
            switch try CleanupProtocol.Reply(frame: try connection.request(IPCFrame(.cleanupCommit))) {
            case .ok(let id):
                return .delivered(EnhancedStatusCode(2, 0, 0), "forwarded as \(id)")
            case .refused(let reply):
                return reply.isPermanent
                    ? .bounced(reply.enhanced ?? EnhancedStatusCode(5, 0, 0), "cannot forward: \(reply)")
                    : .deferred(reply.enhanced ?? EnhancedStatusCode(4, 0, 0), "cannot forward: \(reply)")
            }
        } catch {
            return .deferred(EnhancedStatusCode(4, 3, 0), "cannot forward: \(error)")
        }
    }

    // MARK: aliasd

    func aliasRequest(_ frame: IPCFrame) throws -> IPCFrame {
        for attempt in 0..<2 {
            do {
                if aliasConnection == nil {
                    aliasConnection = try BlockingIPCConnection(connectingTo: realSpool.socket(.aliasd), timeout: 30)
                }
                return try aliasConnection!.request(frame)
            } catch {
                aliasConnection = nil
                if attempt == 1 { throw error }
            }
        }
        throw IPCError.peerClosed
    }

    /// What aliasd told in advance about the targets of the aliases of one
    /// expansion (AliasProtocol.Hint): answers to questions not asked yet.
    final class Hints {
        var routes: [String: AliasProtocol.Resolution] = [:]
        var notAliases: Set<String> = []
    }

    /// The targets of alias `name`, nil if it is none; the hints that come
    /// with them go into `hints`.
    func lookupAlias(_ name: String, hints: Hints? = nil) throws -> [String]? {
        if let hints, hints.notAliases.contains(name) { return nil }
        let expansion = try AliasProtocol.Expansion(frame: try aliasRequest(AliasProtocol.expandRequest(name)))
        if let hints {
            for hint in expansion.hints {
                hints.routes[hint.target] = hint.resolution
                if let user = hint.notAlias { hints.notAliases.insert(user) }
            }
        }
        return expansion.targets
    }

    /// Where an address in an alias, .forward or include file goes.
    func route(_ address: String, hints: Hints? = nil) -> MailerTriple {
        if let resolution = hints?.routes[address] { return route(resolution) }
        guard let frame = try? aliasRequest(AliasProtocol.resolveRequest(address)),
              let resolution = try? AliasProtocol.Resolution(frame: frame) else {
            return MailerTriple(mailer: "*error*", host: "4.3.0", user: "address resolver unavailable",
                                errorText: "address resolver unavailable")
        }
        return route(resolution)
    }

    func route(_ resolution: AliasProtocol.Resolution) -> MailerTriple {
        switch resolution.routeClass {
        case .local, .unknownLocal:
            return MailerTriple(mailer: "local", host: nil, user: resolution.localUser)
        case .error:
            return MailerTriple(mailer: "*error*", host: resolution.status, user: resolution.text, errorText: resolution.text)
        case .remote:
            return MailerTriple(mailer: resolution.mailer, host: resolution.nexthop, user: resolution.user)
        }
    }

    /// One recipient's expansion; aliasd's hints live as long as it does.
    func expansion() -> AliasExpansion {
        let hints = Hints()
        return AliasExpansion(
            aliases: { try self.lookupAlias($0, hints: hints) },
            include: { self.readIncludeFile($0, source: $1) },
            forward: { self.readForwardFile(of: $0) },
            userExists: { self.users.user(named: $0) != nil },
            route: { self.route($0, hints: hints) })
    }

    // MARK: Logging

    func log(_ request: LocalProtocol.Request, to: String, original: String, _ outcome: DeliveryOutcome) {
        let (seconds, micros) = WallClock.now()
        let now = Double(seconds) + Double(micros) / 1e6
        let arrival = Double(request.arrivalMicroseconds) / 1e6
        let activated = Double(request.activatedAt) / 1e6
        let dispatched = Double(request.dispatchedAt) / 1e6
        let delays = [activated - arrival, dispatched - activated, 0, now - dispatched].map(DelayFormat.format).joined(separator: "/")
        let orig = original.isEmpty || original == to ? "" : ", orig_to=<\(original)>"
        logger.info("\(request.queueID): to=<\(to)>\(orig), relay=local, delay=\(DelayFormat.format(now - arrival)), delays=\(delays), dsn=\(outcome.status), status=\(outcome.logWord) (\(outcome.text))")
    }
}
