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
import QueueFormat

/// qmgr - the queue manager
///
/// Description: the one scheduler. It takes new mail from incoming/ the
/// moment cleanup reports it (and by scanning, in case a report was lost),
/// moves it to active/, resolves each recipient with aliasd, and hands local
/// recipients to local processes over `private/local`. Each result is
/// recorded in the queue file; the file is removed when every recipient is
/// done, or moved to deferred/ with its next-try time as mtime.
/// At start it returns whatever was in active/ to incoming/, so a crash
/// never strands mail. Mail for other domains waits in deferred/ until a
/// remote transport exists.
///
/// Security: runs as `mail_owner`, chrooted to the spool. It trusts queue
/// files only after their checksum verifies (others go to corrupt/).
///
/// Configuration: `local_process_limit`, `queue_run_delay`,
/// `minimal_backoff_time`, `maximal_backoff_time`, `maximal_queue_lifetime`,
/// `qmgr_message_active_limit`.
///
/// See also: cleanup(8), local(8), docs/INTERNALS.md.
public final class QueueManager: @unchecked Sendable {
    // All mutable state is confined to `eventLoop`.
    let context: DaemonContext
    let logger: Logger
    let spool: SpoolLayout
    let eventLoop: EventLoop
    let alias: LazyIPCClient
    var agents: [LocalAgentSlot] = []
    var active: [QueueID: ActiveMessage] = [:]
    var jobs: [DeliveryJob] = []
    var inFlightPerKey: [String: Int] = [:]
    let perKeyLimit = 2
    let activeLimit: Int
    let minimalBackoff: Int
    let maximalBackoff: Int
    let queueLifetime: Int
    let queueRunDelay: Int
    var draining = false
    var scanScheduled = false

    init(context: DaemonContext, eventLoop: EventLoop) {
        self.context = context
        logger = context.logger
        spool = context.spool
        self.eventLoop = eventLoop
        let config = context.configuration
        alias = LazyIPCClient(path: spool.socket(.aliasd), eventLoop: eventLoop, timeout: .seconds(30))
        activeLimit = max(1, config.integer("qmgr_message_active_limit"))
        minimalBackoff = max(1, config.seconds("minimal_backoff_time"))
        maximalBackoff = max(minimalBackoff, config.seconds("maximal_backoff_time"))
        queueLifetime = config.seconds("maximal_queue_lifetime")
        queueRunDelay = max(1, config.seconds("queue_run_delay"))
        let agentCount = max(1, config.integer("local_process_limit"))
        agents = (0..<agentCount).map { _ in
            LocalAgentSlot(client: LazyIPCClient(path: spool.socket(.local), eventLoop: eventLoop, timeout: .seconds(3600)))
        }
    }

    public static func main() -> Never {
        DaemonSkeleton.main(program: "qmgr", privilege: .mailOwner(chroot: true)) { _ in () } serve: { context, _ in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let manager = QueueManager(context: context, eventLoop: group.next())
            try manager.serve(group: group)
        }
    }

    func serve(group: EventLoopGroup) throws {
        guard let listenFD = context.listenFDs.first else {
            logger.critical("qmgr needs a listening socket from the master")
            exit(1)
        }
        try eventLoop.submit { self.recoverActive() }.wait()
        let server = try IPCServer.serve(listenFD: listenFD, group: group) {
            QueueTriggerHandler(manager: self)
        }
        if let control = context.controlFD {
            try MasterControl.watch(fd: control, on: group) { request in
                self.eventLoop.execute {
                    switch request {
                    case .drain:
                        self.draining = true
                        server.close(promise: nil)
                        self.exitIfDrained()
                    case .stop:
                        exit(0)
                    }
                }
            }
        }
        eventLoop.execute {
            self.scanIncoming()
            self.scanDeferred()
        }
        // A safety net for lost wake-ups, and the deferred queue's clock.
        eventLoop.scheduleRepeatedTask(initialDelay: .seconds(5), delay: .seconds(5)) { _ in
            self.scanIncoming()
        }
        eventLoop.scheduleRepeatedTask(initialDelay: .seconds(Int64(queueRunDelay)), delay: .seconds(Int64(queueRunDelay))) { _ in
            self.scanDeferred()
        }
        while true { sleep(3600) }
    }

    func exitIfDrained() {
        if draining && jobsInFlight == 0 { exit(0) }
    }

    var jobsInFlight: Int { agents.filter { $0.busy }.count }

    // MARK: Queue scans

    /// After a crash, mail in active/ was mid-delivery: start it over.
    func recoverActive() {
        guard let names = try? FileIO.listDirectory(spool.directory(.active)) else { return }
        for name in names where QueueID.isValid(name) {
            do {
                try FileIO.rename(spool.file(.active, name), spool.file(.incoming, name))
            } catch {
                logger.warning("cannot return \(name) to incoming: \(error)")
            }
        }
    }

    func scanIncoming() {
        guard !draining else { return }
        guard let names = try? FileIO.listDirectory(spool.directory(.incoming)) else { return }
        for name in names.sorted() {
            guard active.count < activeLimit else { return }
            guard let id = QueueID(name), active[id] == nil else { continue }
            activate(id, from: .incoming)
        }
    }

    /// Deferred mail whose time has come (all of it when forced: a flush).
    func scanDeferred(force: Bool = false) {
        guard !draining else { return }
        guard let names = try? FileIO.listDirectory(spool.directory(.deferred)) else { return }
        let now = WallClock.seconds()
        for name in names.sorted() {
            guard active.count < activeLimit else { return }
            guard let id = QueueID(name), active[id] == nil,
                  let st = FileIO.stat(spool.file(.deferred, name)), force || st.st_mtim.tv_sec <= now else { continue }
            activate(id, from: .deferred)
        }
    }

    /// cleanup reported a new message.
    func queued(_ id: QueueID) {
        guard !draining, active[id] == nil, active.count < activeLimit else { return }
        activate(id, from: .incoming)
    }

    // MARK: Activation

    func activate(_ id: QueueID, from queue: SpoolLayout.Queue) {
        let activePath = spool.file(.active, id.rawValue)
        do {
            try FileIO.rename(spool.file(queue, id.rawValue), activePath)
        } catch {
            if !error.isNotFound { logger.warning("\(id): cannot move to active: \(error)") }
            return
        }
        let envelope: QueueEnvelope
        do {
            let bytes = try FileIO.readFile(activePath)
            envelope = try QueueFileReader.parse(bytes)
        } catch let error as QueueFileError {
            logger.warning("\(id): corrupt queue file (\(error)); moved to corrupt/")
            try? FileIO.rename(activePath, spool.file(.corrupt, id.rawValue))
            return
        } catch {
            logger.warning("\(id): cannot read queue file: \(error)")
            try? FileIO.rename(activePath, spool.file(queue, id.rawValue))
            return
        }
        let (seconds, micros) = WallClock.now()
        let message = ActiveMessage(id: id, envelope: envelope, activatedAt: seconds * 1_000_000 + micros)
        active[id] = message
        if queue == .incoming {
            let size = envelope.contentLength
            logger.info("\(id): from=<\(envelope.sender)>, size=\(size), nrcpt=\(envelope.recipients.count) (queue active)")
        }
        resolveRecipients(message)
    }

    func resolveRecipients(_ message: ActiveMessage) {
        let pending = message.envelope.recipients.indices.filter { !message.envelope.recipients[$0].status.isDone }
        guard !pending.isEmpty else {
            finish(message)
            return
        }
        message.resolving = pending.count
        message.localGroups = [:]
        for index in pending {
            let address = message.envelope.recipients[index].address
            alias.request(AliasProtocol.resolveRequest(address)).assumeIsolated().whenComplete { result in
                message.resolving -= 1
                switch result {
                case .success(let frame):
                    if let resolution = try? AliasProtocol.Resolution(frame: frame) {
                        switch resolution.routeClass {
                        case .local:
                            message.localGroups[resolution.localUser, default: []].append(index)
                            message.localUsers[index] = resolution.localUser
                        case .unknownLocal:
                            message.bounced[index] = .bounced(EnhancedStatusCode(5, 1, 1), "unknown user: \"\(resolution.localUser)\"")
                            self.logResult(message, index, relay: "local", outcome: message.bounced[index]!)
                        case .error:
                            let status = EnhancedStatusCode(parsing: resolution.status) ?? EnhancedStatusCode(5, 0, 0)
                            let outcome: DeliveryOutcome = status.isTransient
                                ? .deferred(status, resolution.text) : .bounced(status, resolution.text)
                            if status.isTransient { message.deferred[index] = outcome } else { message.bounced[index] = outcome }
                            self.logResult(message, index, relay: "none", outcome: outcome)
                        case .remote:
                            let outcome = DeliveryOutcome.deferred(EnhancedStatusCode(4, 3, 2),
                                "delivery to remote domains is not available yet; the message waits in the queue")
                            message.deferred[index] = outcome
                            self.logResult(message, index, relay: "none", outcome: outcome)
                        }
                    } else {
                        message.deferred[index] = .deferred(EnhancedStatusCode(4, 3, 0), "address resolver returned an error")
                    }
                case .failure(let error):
                    message.deferred[index] = .deferred(EnhancedStatusCode(4, 3, 0), "address resolver unavailable: \(error)")
                }
                if message.resolving == 0 {
                    for (user, indexes) in message.localGroups.sorted(by: { $0.key < $1.key }) {
                        for index in indexes {
                            message.outstanding += 1
                            self.jobs.append(DeliveryJob(message: message, recipientIndexes: [index], concurrencyKey: user))
                        }
                    }
                    if message.outstanding == 0 { self.finish(message) } else { self.dispatch() }
                }
            }
        }
    }

    // MARK: Delivery

    func dispatch() {
        guard !jobs.isEmpty else { return }
        for slot in agents where !slot.busy {
            guard let jobIndex = jobs.firstIndex(where: { (inFlightPerKey[$0.concurrencyKey] ?? 0) < perKeyLimit }) else { return }
            let job = jobs.remove(at: jobIndex)
            start(job, on: slot)
        }
    }

    func start(_ job: DeliveryJob, on slot: LocalAgentSlot) {
        slot.busy = true
        inFlightPerKey[job.concurrencyKey, default: 0] += 1
        let envelope = job.message.envelope
        let (seconds, micros) = WallClock.now()
        let request = LocalProtocol.Request(
            queueID: job.message.id, sender: envelope.sender, arrivalSeconds: envelope.arrivalSeconds,
            contentOffset: envelope.contentOffset, contentLength: envelope.contentLength,
            recipients: job.recipientIndexes.map {
                LocalProtocol.Recipient(index: $0, address: envelope.recipients[$0].address,
                                        originalRecipient: envelope.recipients[$0].originalRecipient,
                                        localUser: job.message.localUsers[$0] ?? "")
            },
            arrivalMicroseconds: envelope.arrivalSeconds * 1_000_000 + envelope.arrivalMicroseconds,
            activatedAt: job.message.activatedAt, dispatchedAt: seconds * 1_000_000 + micros)
        slot.client.request(request.frame, idempotent: false).assumeIsolated().whenComplete { result in
            slot.busy = false
            self.inFlightPerKey[job.concurrencyKey, default: 1] -= 1
            if self.inFlightPerKey[job.concurrencyKey] == 0 { self.inFlightPerKey[job.concurrencyKey] = nil }
            self.completed(job, result)
            self.exitIfDrained()
            self.dispatch()
        }
    }

    func completed(_ job: DeliveryJob, _ result: Result<IPCFrame, Error>) {
        let message = job.message
        message.outstanding -= 1
        switch result {
        case .success(let frame):
            if let reply = try? LocalProtocol.Result(frame: frame) {
                message.noteSuccesses(reply)
                for (index, outcome) in reply.outcomes where job.recipientIndexes.contains(index) {
                    record(message, index, outcome)
                }
                // A recipient the agent said nothing about is tried again later.
                for index in job.recipientIndexes where !reply.outcomes.contains(where: { $0.index == index }) {
                    record(message, index, .deferred(EnhancedStatusCode(4, 3, 0), "no result from the delivery agent"))
                }
            } else {
                for index in job.recipientIndexes {
                    record(message, index, .deferred(EnhancedStatusCode(4, 3, 0), "delivery agent protocol error"))
                }
            }
        case .failure(let error):
            // The agent died or hung mid-delivery. The delivery may have
            // happened; trying again soon risks a duplicate, never a loss.
            for index in job.recipientIndexes {
                let failures = (message.agentFailures[index] ?? 0) + 1
                message.agentFailures[index] = failures
                if failures < 3 && !draining {
                    logger.warning("\(message.id): local delivery agent failed (\(error)); retrying")
                    message.outstanding += 1
                    let retry = DeliveryJob(message: message, recipientIndexes: [index], concurrencyKey: job.concurrencyKey)
                    eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(200 * Int64(failures))) {
                        self.jobs.append(retry)
                        self.dispatch()
                    }
                } else {
                    record(message, index, .deferred(EnhancedStatusCode(4, 3, 0), "local delivery agent failed: \(error)"))
                }
            }
        }
        if message.isSettled { finish(message) }
    }

    func record(_ message: ActiveMessage, _ index: Int, _ outcome: DeliveryOutcome) {
        switch outcome {
        case .delivered:
            message.mark(index, .delivered)
            // Written at once (no fsync): the page cache outlives a killed
            // qmgr, so a restart does not deliver this recipient again. The
            // fsync comes when the file is kept (finalize); a power cut
            // before it may repeat the delivery, never lose it.
            markInPlace(message, index)
        case .bounced:
            message.bounced[index] = outcome
        case .deferred:
            message.deferred[index] = outcome
        }
    }

    // MARK: Finishing a pass

    func finish(_ message: ActiveMessage) {
        BounceNotice.sendSuccessReport(for: message, manager: self)
        let now = WallClock.seconds()
        if now - message.envelope.arrivalSeconds >= queueLifetime {
            for (index, outcome) in message.deferred {
                let bounce = DeliveryOutcome.bounced(EnhancedStatusCode(4, 4, 7),
                                                     "message expired after \(DurationText.describe(queueLifetime)) in the queue: \(outcome.text)")
                message.bounced[index] = bounce
                logResult(message, index, relay: "none", outcome: bounce)
            }
            message.deferred.removeAll()
        }
        guard !message.bounced.isEmpty else {
            finalize(message)
            return
        }
        // The notice must be in the queue before the recipients are marked
        // done: otherwise a crash in between would lose it.
        BounceNotice.send(for: message, manager: self).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let noticeID):
                if let noticeID {
                    self.logger.info("\(message.id): sender non-delivery notification: \(noticeID)")
                }
                for index in message.bounced.keys { message.mark(index, .bounced) }
            case .failure(let error):
                self.logger.warning("\(message.id): cannot queue the non-delivery notification: \(error)")
                for (index, outcome) in message.bounced {
                    message.deferred[index] = .deferred(EnhancedStatusCode(4, 3, 0),
                                                        "bounce pending (\(outcome.text))")
                }
            }
            message.bounced.removeAll()
            self.finalize(message)
        }
    }

    /// defer/ID: why each waiting recipient waits, for mailq and `hikyaku
    /// queue` (informational: no fsync; a lost file loses only the reason).
    func writeDeferReasons(_ message: ActiveMessage) {
        var text = ""
        for (index, outcome) in message.deferred.sorted(by: { $0.key < $1.key }) {
            let reason = outcome.text.filter { $0 != "\n" && $0 != "\t" }
            text += "\(message.envelope.recipients[index].address)\t\(reason)\n"
        }
        let path = spool.deferDirectory + "/" + message.id.rawValue
        let temporary = path + ".tmp"
        guard let fd = try? FileIO.open(temporary, O_WRONLY | O_CREAT | O_TRUNC) else { return }
        _ = try? FileIO.writeAll(fd, Array(text.utf8))
        FileIO.close(fd)
        _ = try? FileIO.rename(temporary, path)
    }

    func markInPlace(_ message: ActiveMessage, _ index: Int) {
        let path = spool.file(.active, message.id.rawValue)
        let recipient = message.envelope.recipients[index]
        do {
            let fd = try FileIO.open(path, O_WRONLY)
            defer { FileIO.close(fd) }
            try FileIO.pwriteAll(fd, [recipient.status.rawValue], at: recipient.statusOffset, path: path)
        } catch {
            logger.warning("\(message.id): cannot record delivery in queue file: \(error)")
        }
    }

    func finalize(_ message: ActiveMessage) {
        let now = WallClock.seconds()
        let activePath = spool.file(.active, message.id.rawValue)
        if message.envelope.recipients.allSatisfy({ $0.status.isDone }) {
            do {
                try FileIO.unlink(activePath)
                _ = unlink(spool.deferDirectory + "/" + message.id.rawValue)
                logger.info("\(message.id): removed")
            } catch {
                logger.warning("\(message.id): cannot remove queue file: \(error)")
            }
            active[message.id] = nil
            refill()
            return
        }
        // Some recipients remain: record the done ones durably, then wait.
        do {
            let fd = try FileIO.open(activePath, O_RDWR)
            defer { FileIO.close(fd) }
            for recipient in message.envelope.recipients where recipient.status.isDone {
                try FileIO.pwriteAll(fd, [recipient.status.rawValue], at: recipient.statusOffset, path: activePath)
            }
            try FileIO.fsync(fd, path: activePath)
            let age = max(0, now - message.envelope.arrivalSeconds)
            let backoff = min(maximalBackoff, max(minimalBackoff, age))
            try FileIO.setModificationTime(activePath, seconds: now + backoff)
            writeDeferReasons(message)
            try FileIO.rename(activePath, spool.file(.deferred, message.id.rawValue))
        } catch {
            logger.warning("\(message.id): cannot update queue file: \(error)")
        }
        active[message.id] = nil
        refill()
    }

    /// Room in the active set: take more from incoming/.
    func refill() {
        guard !scanScheduled, !draining else { return }
        scanScheduled = true
        eventLoop.execute {
            self.scanScheduled = false
            self.scanIncoming()
        }
    }

    /// A result qmgr decided itself (unknown user, remote, expired), in
    /// the log's usual shape.
    func logResult(_ message: ActiveMessage, _ index: Int, relay: String, outcome: DeliveryOutcome) {
        let recipient = message.envelope.recipients[index]
        let (seconds, micros) = WallClock.now()
        let now = Double(seconds) + Double(micros) / 1e6
        let arrival = Double(message.envelope.arrivalSeconds) + Double(message.envelope.arrivalMicroseconds) / 1e6
        let activated = Double(message.activatedAt) / 1e6
        let delays = "\(DelayFormat.format(activated - arrival))/\(DelayFormat.format(now - activated))/0/0"
        logger.info("\(message.id): to=<\(recipient.address)>, relay=\(relay), delay=\(DelayFormat.format(now - arrival)), delays=\(delays), dsn=\(outcome.status), status=\(outcome.logWord) (\(outcome.text))")
    }
}

/// A connection to one local process, used for one delivery at a time.
final class LocalAgentSlot {
    let client: LazyIPCClient
    var busy = false

    init(client: LazyIPCClient) {
        self.client = client
    }
}

/// Receives wake-ups from cleanup: "this queue ID is in incoming/".
final class QueueTriggerHandler: ChannelInboundHandler {
    typealias InboundIn = IPCFrame
    let manager: QueueManager

    init(manager: QueueManager) {
        self.manager = manager
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let manager = self.manager
        if frame.type == .qmgrFlush {
            manager.eventLoop.execute { manager.scanDeferred(force: true) }
            return
        }
        guard frame.type == .qmgrQueued, let text = frame.string(.queueID), let id = QueueID(text) else { return }
        manager.eventLoop.execute { manager.queued(id) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
