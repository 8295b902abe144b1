#if canImport(Glibc)
import Glibc
#endif
import DaemonSkeleton
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import Logging
import MailCore
import NIOCore
import NIOPosix

/// pickup - local mail pickup
///
/// Description: takes the files the sendmail command dropped into maildrop/
/// (through the setgid hikyaku-drop helper) and feeds each to cleanup as a
/// local submission: the submitter is the file's owner (the kernel says so,
/// not the file), the sender is theirs unless they gave -f, in which case an
/// `X-Authentication-Warning:` field is added unless they are root, the mail
/// owner or in trusted-users. A `Received: by HOST (hikyaku, from userid N)`
/// field records the submission. The file is removed once cleanup has
/// committed the queue file. It works at once when the helper wakes it over
/// `public/pickup`, and every 5 seconds in case a wake-up was lost.
///
/// A file that cannot be queued yet (cleanup or aliasd not there, a 4xx
/// refusal, a file it cannot read) waits: it is tried again after 5 seconds,
/// then 10, 20, ... up to 5 minutes, and logged when it starts to wait and
/// whenever the reason changes, not at every try. A file that cleanup refuses
/// for good (5xx: too big, too many hops), or that has waited
/// `maximal_queue_lifetime`, is returned to the user who submitted it in a
/// non-delivery notice queued through cleanup (null sender; the postmaster
/// when the uid has no passwd entry), and then moved to corrupt/ for the
/// administrator. The sendmail command checked the size and the hops
/// before, so this is for what slips past it (a changed configuration, a
/// file from an older version).
///
/// Security: runs as `mail_owner`, chrooted to the spool. It trusts the
/// file's owner uid and nothing in the file's contents; a file that does not
/// parse goes to corrupt/. A notice goes only to the submitter's own address
/// (never to a `-f` address, which the submitter chose).
///
/// Configuration: `myhostname`, `myorigin`, `message_size_limit`,
/// `maximal_queue_lifetime`.
///
/// See also: sendmail(8), cleanup(8).
public final class PickupDaemon: @unchecked Sendable {
    // Confined to the single event loop.
    let context: DaemonContext
    let logger: Logger
    let eventLoop: EventLoop
    let hostname: String
    let origin: String
    let sizeLimit: Int
    let lifetime: Int
    let cleanup: LazyIPCClient
    let aliasd: LazyIPCClient
    var scanning = false
    var rescan = false
    var draining = false
    /// Files that could not be queued yet, and when to try each again.
    var waiting = RetryTracker<String>(firstDelay: 5, maximumDelay: 300)

    init(context: DaemonContext, eventLoop: EventLoop) {
        self.context = context
        logger = context.logger
        self.eventLoop = eventLoop
        hostname = context.configuration.string("myhostname")
        origin = context.configuration.string("myorigin")
        sizeLimit = context.configuration.size("message_size_limit")
        lifetime = context.configuration.seconds("maximal_queue_lifetime")
        cleanup = LazyIPCClient(path: context.spool.socket(.cleanup), eventLoop: eventLoop)
        aliasd = LazyIPCClient(path: context.spool.socket(.aliasd), eventLoop: eventLoop)
    }

    public static func main() -> Never {
        DaemonSkeleton.main(program: "pickup", privilege: .mailOwner(chroot: true)) { _ in () } serve: { context, _ in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let daemon = PickupDaemon(context: context, eventLoop: group.next())
            try daemon.serve(group: group)
        }
    }

    func serve(group: EventLoopGroup) throws {
        let server = try IPCServer.serve(listenFD: context.listenFD(), group: group, idleTimeout: .seconds(30)) {
            // Any frame is a wake-up from hikyaku-drop, which expects no reply.
            IPCRequestHandler { _ in
                self.eventLoop.execute { self.scan() }
                return nil
            }
        }
        try MasterControl.watch(context, on: eventLoop) {
            self.draining = true
            server.close(promise: nil)
            if !self.scanning { exit(0) }
        }
        eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(5)) { _ in self.scan() }
        while true { sleep(3600) }
    }

    /// Takes every file in maildrop/ that is due, one after another.
    func scan() {
        guard !draining else { return }
        guard !scanning else {
            rescan = true
            return
        }
        let directory = context.spool.directory(.maildrop)
        let present = ((try? FileIO.listDirectory(directory)) ?? []).filter { !$0.hasPrefix(".") }
        waiting.keepOnly(Set(present))
        let now = WallClock.monotonic()
        let names = present.filter { waiting.isDue($0, now: now) }.sorted()
        guard !names.isEmpty else { return }
        scanning = true
        process(names[...])
    }

    func process(_ names: ArraySlice<String>) {
        guard let name = names.first else {
            scanning = false
            if draining { exit(0) }
            if rescan {
                rescan = false
                scan()
            }
            return
        }
        submit(name).whenComplete { _ in
            self.eventLoop.execute { self.process(names.dropFirst()) }
        }
    }

    /// One maildrop file on its way: who submitted it and when (from the
    /// file's own status), and what it holds, when it could be read.
    struct Submission {
        let name: String
        let path: String
        let uid: uid_t
        let submitted: Int
        let file: MaildropFile?
    }

    func submit(_ name: String) -> EventLoopFuture<Void> {
        let path = context.spool.file(.maildrop, name)
        let bytes: [UInt8]
        let st: stat
        do {
            let fd = try FileIO.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
            defer { FileIO.close(fd) }
            st = try FileIO.fstat(fd, path: path)
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                _ = unlink(path)
                waiting.forget(name)
                return eventLoop.makeSucceededVoidFuture()
            }
            bytes = try FileIO.readAll(fd, path: path, limit: 1 << 30)
        } catch {
            guard !error.isNotFound, let st = FileIO.lstat(path) else {
                waiting.forget(name)
                return eventLoop.makeSucceededVoidFuture()
            }
            let submission = Submission(name: name, path: path, uid: st.st_uid, submitted: Int(st.st_mtim.tv_sec), file: nil)
            return wait(submission, user: nil, reason: "cannot read it: \(error)", status: EnhancedStatusCode(4, 3, 0))
        }
        let file: MaildropFile
        do {
            file = try MaildropFile(decoding: bytes)
        } catch {
            logger.warning("\(name): not a maildrop file (\(error)); moved to corrupt/")
            try? FileIO.rename(path, context.spool.file(.corrupt, "maildrop." + name))
            waiting.forget(name)
            return eventLoop.makeSucceededVoidFuture()
        }
        let submission = Submission(name: name, path: path, uid: st.st_uid, submitted: Int(st.st_mtim.tv_sec), file: file)
        let uid = st.st_uid
        return user(uid).flatMap { user in
            // -f naming the submitter's own local address needs no warning:
            // ask where it goes.
            guard let requested = file.requestedSender, !user.trusted, requested.contains("@") else {
                return self.enqueue(file, name: name, uid: uid, user: user, ownAddress: nil).map { (user, $0) }
            }
            return self.aliasd.request(AliasProtocol.resolveRequest(requested.trimmingCharacters("<> "))).flatMap { frame in
                let resolution = try? AliasProtocol.Resolution(frame: frame)
                let own = resolution?.routeClass == .local && resolution?.localUser.lowercased() == user.name.lowercased()
                return self.enqueue(file, name: name, uid: uid, user: user, ownAddress: own ? requested : nil).map { (user, $0) }
            }
        }.flatMap { (user, outcome) -> EventLoopFuture<Void> in
            switch outcome {
            case .queued(let id, let sender):
                self.logger.info("\(id): uid=\(uid) from=<\(sender)>")
                if !file.ignoredOptions.isEmpty {
                    self.logger.debug("\(id): sendmail options accepted without effect: \(file.ignoredOptions.joined(separator: " "))")
                }
                _ = unlink(path)
                if let entry = self.waiting.forget(name) {
                    self.logger.info("\(name): queued as \(id) after \(entry.attempts + 1) tries")
                }
                return self.eventLoop.makeSucceededVoidFuture()
            case .refused(let reply) where reply.isPermanent:
                // A permanent refusal will not change: tell the submitter,
                // keep the file for the admin, stop trying.
                return self.giveUp(submission, user: user, status: reply.enhanced ?? EnhancedStatusCode(5, 0, 0),
                                   diagnostic: reply.description, what: "cleanup refused it: \(reply)")
            case .refused(let reply):
                return self.wait(submission, user: user, reason: "cleanup refused it for now: \(reply)",
                                 status: reply.enhanced ?? EnhancedStatusCode(4, 3, 0))
            }
        }.flatMapError { error in
            // aliasd or cleanup not there yet: the file waits.
            self.wait(submission, user: nil, reason: "cannot queue yet: \(error)", status: EnhancedStatusCode(4, 3, 0))
        }
    }

    /// Who uid N is; a uid without a passwd entry is `#N`, never trusted.
    func user(_ uid: uid_t) -> EventLoopFuture<AliasProtocol.User> {
        aliasd.request(AliasProtocol.User.request(uid: Int(uid))).map { frame in
            (try? AliasProtocol.User(frame: frame)) ?? AliasProtocol.User(name: "#\(uid)", trusted: false)
        }
    }

    /// A file that could not be queued this time: it waits for its next
    /// try, and says so when that is news; once it has waited
    /// `maximal_queue_lifetime`, it is given up.
    func wait(_ submission: Submission, user: AliasProtocol.User?, reason: String,
              status: EnhancedStatusCode) -> EventLoopFuture<Void> {
        if lifetime > 0 && WallClock.seconds() - submission.submitted >= lifetime {
            let waited = DurationText.describe(lifetime)
            return giveUp(submission, user: user, status: status,
                          diagnostic: "the message could not be queued within \(waited): \(reason)",
                          what: "could not be queued within \(waited) (\(reason))")
        }
        let (entry, isNews) = waiting.failed(submission.name, reason: reason, now: WallClock.monotonic())
        if isNews {
            logger.warning("\(submission.name): \(reason); trying again in \(DelayFormat.format(waiting.delay(afterAttempts: entry.attempts))) s, and less often while it fails")
        }
        return eventLoop.makeSucceededVoidFuture()
    }

    /// The end of the road for a file: a notice to whoever submitted it, then
    /// corrupt/. If the notice cannot be queued yet, the file waits and all
    /// of this happens again at its next try.
    func giveUp(_ submission: Submission, user: AliasProtocol.User?, status: EnhancedStatusCode,
                diagnostic: String, what: String) -> EventLoopFuture<Void> {
        let known = user.map { eventLoop.makeSucceededFuture($0) } ?? self.user(submission.uid)
        return known.flatMap { user -> EventLoopFuture<(String, QueueID)> in
            // A uid without a passwd entry has no mailbox to be told in.
            let toPostmaster = user.name.hasPrefix("#")
            let recipient = toPostmaster ? "postmaster@\(self.hostname)" : self.qualify(user.name)
            let now = WallClock.seconds()
            let local = WallClock.localTime(now)
            let recipients = (submission.file?.recipients ?? []).map { address in
                DeliveryStatusNotification.Recipient(finalRecipient: self.qualify(address), action: .failed,
                                                     status: status, diagnostic: .local(diagnostic))
            }
            let notice = DeliveryStatusNotification(
                kind: .failure, hostname: self.hostname,
                original: .localSubmission(file: submission.name, diagnostic: diagnostic),
                reportRecipient: recipient, arrivalDate: WallClock.localTime(submission.submitted).rfc5322,
                date: local.rfc5322, messageID: "<\(local.compactStamp).\(submission.name)@\(self.hostname)>",
                boundary: "\(submission.name).\(now)/\(self.hostname)", recipients: recipients,
                sizeLimit: self.sizeLimit)
            let begin = CleanupProtocol.Begin(origin: toPostmaster ? .doubleBounce : .bounce, sender: "",
                                              recipients: [recipient], clientName: "", clientAddress: "",
                                              heloName: "", protocolName: "", bodyType: "8BITMIME")
            return self.transaction(begin, content: notice.message(original: submission.file?.content)).flatMapThrowing { reply in
                switch reply {
                case .ok(let id): return (recipient, id)
                case .refused(let refusal): throw NoticeRefused(reply: refusal)
                }
            }
        }.map { (recipient, id) in
            self.logger.warning("\(submission.name): \(what); returned to <\(recipient)> as \(id); moved to corrupt/")
            self.bury(submission)
        }.flatMapError { error in
            if let refused = error as? NoticeRefused, refused.reply.isPermanent {
                self.logger.warning("\(submission.name): \(what); the notice to its sender was refused too (\(refused.reply)); moved to corrupt/")
                self.bury(submission)
                return self.eventLoop.makeSucceededVoidFuture()
            }
            let reason = "\(what); cannot return it to its sender yet: \(error)"
            let (entry, isNews) = self.waiting.failed(submission.name, reason: reason, now: WallClock.monotonic())
            if isNews {
                self.logger.warning("\(submission.name): \(reason); trying again in \(DelayFormat.format(self.waiting.delay(afterAttempts: entry.attempts))) s")
            }
            return self.eventLoop.makeSucceededVoidFuture()
        }
    }

    struct NoticeRefused: Error, CustomStringConvertible {
        let reply: SMTPReply
        var description: String { "cleanup refused the notice: \(reply)" }
    }

    /// Moves the file to corrupt/ for the administrator and forgets it.
    func bury(_ submission: Submission) {
        try? FileIO.rename(submission.path, context.spool.file(.corrupt, "maildrop." + submission.name))
        waiting.forget(submission.name)
    }

    func qualify(_ address: String) -> String {
        address.contains("@") ? address : "\(address)@\(origin)"
    }

    enum Outcome {
        case queued(QueueID, sender: String)
        case refused(SMTPReply)
    }

    /// One transaction with cleanup: begin, the content in pieces, commit.
    /// A refusal at begin or at commit is the reply; a broken connection is
    /// a failed future.
    func transaction(_ begin: CleanupProtocol.Begin, content: [UInt8],
                     header: @escaping (QueueID) -> [UInt8] = { _ in [] }) -> EventLoopFuture<CleanupProtocol.Reply> {
        cleanup.connection().flatMap { client in
            client.request(begin.frame).flatMap { frame -> EventLoopFuture<CleanupProtocol.Reply> in
                let opened: CleanupProtocol.Reply
                do {
                    opened = try CleanupProtocol.Reply(frame: frame)
                } catch {
                    return self.eventLoop.makeFailedFuture(error)
                }
                guard case .ok(let id) = opened else { return self.eventLoop.makeSucceededFuture(opened) }
                let all = header(id) + content
                var start = 0
                while start < all.count {
                    let end = min(all.count, start + IPCFrame.maximumChunk)
                    _ = client.send(CleanupProtocol.content(Array(all[start..<end])))
                    start = end
                }
                return client.request(IPCFrame(.cleanupCommit)).flatMapThrowing { try CleanupProtocol.Reply(frame: $0) }
            }
        }
    }

    func enqueue(_ file: MaildropFile, name: String, uid: uid_t, user: AliasProtocol.User,
                 ownAddress: String?) -> EventLoopFuture<Outcome> {
        let own = qualify(user.name)
        var sender = own
        var warning: String? = nil
        if let requested = file.requestedSender {
            let bare = requested.trimmingCharacters("<> ")
            sender = bare.isEmpty ? "" : qualify(bare)
            if !user.trusted && sender.lowercased() != own.lowercased() && ownAddress == nil {
                // sendmail's words: for -f, and for the MAIL FROM of -bs.
                warning = file.smtpProtocol != nil
                    ? "X-Authentication-Warning: \(hostname): \(user.name) owned process doing -bs\n"
                    : "X-Authentication-Warning: \(hostname): \(user.name) set sender to \(bare.isEmpty ? "<>" : bare) using -f\n"
            }
        } else if user.name.hasPrefix("#") {
            // The sendmail command refuses this (no -f, no passwd entry); a
            // file can still get here when the entry went away meanwhile.
            logger.warning("\(name): uid \(uid) has no passwd entry: the message goes out from \(own), an address that can receive neither replies nor non-delivery notices")
        }
        var begin = CleanupProtocol.Begin(origin: .local, sender: sender, recipients: file.recipients.map(qualify),
                                          protocolName: "local", bodyType: file.bodyType ?? "")
        begin.removeBcc = file.removeBcc
        begin.fullName = file.fullName ?? ""
        // sendmail -N, -R and -V come from the submitter as typed: a value
        // that is not valid is dropped here, with a word in the log.
        if let notify = file.notify {
            if DSNNotify(option: notify) != nil {
                begin.notify = notify
            } else {
                logger.warning("\(name): ignoring bad -N value: \(notify)")
            }
        }
        if let ret = file.ret {
            if DSNReturn(parameter: ret) != nil {
                begin.ret = ret
            } else {
                logger.warning("\(name): ignoring bad -R value: \(ret)")
            }
        }
        if let envid = file.envid {
            if DSNEnvelopeID.validated(envid) != nil {
                begin.envid = envid
            } else {
                logger.warning("\(name): ignoring bad -V value: \(envid)")
            }
        }
        begin.recipientDSN = file.recipientDSN
        begin.submitter = String(uid)
        let authenticationWarning = warning
        let hostname = self.hostname
        let finalSender = sender
        return transaction(begin, content: file.content) { id in
            let date = WallClock.localTime(WallClock.seconds()).rfc5322
            var head = "Received: by \(hostname) (hikyaku, from userid \(uid))\n\tid \(id); \(date)\n"
            if let authenticationWarning { head += authenticationWarning }
            return Array(head.utf8)
        }.map { reply in
            switch reply {
            case .ok(let id): return .queued(id, sender: finalSender)
            case .refused(let refusal): return .refused(refusal)
            }
        }
    }
}

extension String {
    func trimmingCharacters(_ set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
