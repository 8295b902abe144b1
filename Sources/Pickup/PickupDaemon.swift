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
/// Security: runs as `mail_owner`, chrooted to the spool. It trusts the
/// file's owner uid and nothing in the file's contents; a file that does not
/// parse goes to corrupt/.
///
/// Configuration: `myhostname`, `myorigin`.
///
/// See also: sendmail(8), cleanup(8).
public final class PickupDaemon: @unchecked Sendable {
    // Confined to the single event loop.
    let context: DaemonContext
    let logger: Logger
    let eventLoop: EventLoop
    let hostname: String
    let origin: String
    let cleanup: LazyIPCClient
    let aliasd: LazyIPCClient
    var scanning = false
    var rescan = false
    var draining = false

    init(context: DaemonContext, eventLoop: EventLoop) {
        self.context = context
        logger = context.logger
        self.eventLoop = eventLoop
        hostname = context.configuration.string("myhostname")
        origin = context.configuration.string("myorigin")
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
        guard let listenFD = context.listenFDs.first else {
            logger.critical("pickup needs a listening socket from the master")
            exit(1)
        }
        let server = try IPCServer.serve(listenFD: listenFD, group: group, idleTimeout: .seconds(30)) {
            PickupWakeHandler(daemon: self)
        }
        if let control = context.controlFD {
            try MasterControl.watch(fd: control, on: group) { request in
                self.eventLoop.execute {
                    switch request {
                    case .drain:
                        self.draining = true
                        server.close(promise: nil)
                        if !self.scanning { exit(0) }
                    case .stop:
                        exit(0)
                    }
                }
            }
        }
        eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(5)) { _ in self.scan() }
        while true { sleep(3600) }
    }

    /// Takes every file in maildrop/, one after another.
    func scan() {
        guard !draining else { return }
        guard !scanning else {
            rescan = true
            return
        }
        let directory = context.spool.directory(.maildrop)
        let names = ((try? FileIO.listDirectory(directory)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
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

    func submit(_ name: String) -> EventLoopFuture<Void> {
        let path = context.spool.file(.maildrop, name)
        let bytes: [UInt8]
        let uid: uid_t
        do {
            let fd = try FileIO.open(path, O_RDONLY | O_NOFOLLOW)
            defer { FileIO.close(fd) }
            let st = try FileIO.fstat(fd, path: path)
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                _ = unlink(path)
                return eventLoop.makeSucceededVoidFuture()
            }
            uid = st.st_uid
            bytes = try FileIO.readAll(fd, path: path, limit: 1 << 30)
        } catch {
            if !error.isNotFound { logger.warning("\(path): \(error)") }
            return eventLoop.makeSucceededVoidFuture()
        }
        let file: MaildropFile
        do {
            file = try MaildropFile(decoding: bytes)
        } catch {
            logger.warning("\(name): not a maildrop file (\(error)); moved to corrupt/")
            try? FileIO.rename(path, context.spool.file(.corrupt, "maildrop." + name))
            return eventLoop.makeSucceededVoidFuture()
        }
        return aliasd.request(AliasProtocol.User.request(uid: Int(uid))).flatMap { frame in
            let user = (try? AliasProtocol.User(frame: frame)) ?? AliasProtocol.User(name: "#\(uid)", trusted: false)
            // -f naming the submitter's own local address needs no warning:
            // ask where it goes.
            guard let requested = file.requestedSender, !user.trusted, requested.contains("@") else {
                return self.enqueue(file, uid: uid, user: user, ownAddress: nil, name: name, path: path)
            }
            return self.aliasd.request(AliasProtocol.resolveRequest(requested.trimmingCharacters("<> "))).flatMap { frame in
                let resolution = try? AliasProtocol.Resolution(frame: frame)
                let own = resolution?.routeClass == .local && resolution?.localUser.lowercased() == user.name.lowercased()
                return self.enqueue(file, uid: uid, user: user, ownAddress: own ? requested : nil, name: name, path: path)
            }
        }.flatMapErrorThrowing { error in
            // aliasd or cleanup not there yet: the file waits for the next scan.
            self.logger.warning("\(name): cannot queue yet: \(error)")
        }
    }

    func qualify(_ address: String) -> String {
        address.contains("@") ? address : "\(address)@\(origin)"
    }

    func enqueue(_ file: MaildropFile, uid: uid_t, user: AliasProtocol.User, ownAddress: String?, name: String,
                 path: String) -> EventLoopFuture<Void> {
        let own = qualify(user.name)
        var sender = own
        var warning: String? = nil
        if let requested = file.requestedSender {
            let bare = requested.trimmingCharacters("<> ")
            sender = bare.isEmpty ? "" : qualify(bare)
            if !user.trusted && sender.lowercased() != own.lowercased() && ownAddress == nil {
                warning = "X-Authentication-Warning: \(hostname): \(user.name) set sender to \(bare.isEmpty ? "<>" : bare) using -f\n"
            }
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
        let request = begin.frame
        let authenticationWarning = warning
        let finalSender = sender
        return cleanup.connection().flatMap { client in
            client.request(request).flatMap { frame -> EventLoopFuture<IPCFrame> in
                guard case .ok(let id) = try? CleanupProtocol.Reply(frame: frame) else {
                    return self.eventLoop.makeFailedFuture(IPCError.system("cleanup refused the message"))
                }
                let date = WallClock.localTime(WallClock.seconds()).rfc5322
                var head = "Received: by \(self.hostname) (hikyaku, from userid \(uid))\n\tid \(id); \(date)\n"
                if let authenticationWarning { head += authenticationWarning }
                let content = Array(head.utf8) + file.content
                var start = 0
                while start < content.count {
                    let end = min(content.count, start + IPCFrame.maximumChunk)
                    _ = client.send(CleanupProtocol.content(Array(content[start..<end])))
                    start = end
                }
                return client.request(IPCFrame(.cleanupCommit))
            }
        }.flatMapThrowing { frame in
            switch try CleanupProtocol.Reply(frame: frame) {
            case .ok(let id):
                self.logger.info("\(id): uid=\(uid) from=<\(finalSender)>")
                if !file.ignoredOptions.isEmpty {
                    self.logger.debug("\(id): sendmail options accepted without effect: \(file.ignoredOptions.joined(separator: " "))")
                }
                _ = unlink(path)
            case .refused(let reply):
                // A permanent refusal will not change: keep the file for the
                // admin instead of retrying for ever.
                self.logger.warning("\(name): cleanup refused it: \(reply)")
                if reply.isPermanent { try? FileIO.rename(path, self.context.spool.file(.corrupt, "maildrop." + name)) }
            }
        }
    }
}

final class PickupWakeHandler: ChannelInboundHandler {
    typealias InboundIn = IPCFrame
    let daemon: PickupDaemon

    init(daemon: PickupDaemon) {
        self.daemon = daemon
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let daemon = self.daemon
        daemon.eventLoop.execute { daemon.scan() }
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
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
