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
/// recipients to local processes over `private/local` and remote ones to
/// smtp-client over `private/smtp`, grouped by destination. Each result is
/// recorded in the queue file; the file is removed when every recipient is
/// done, or moved to deferred/ with its next-try time as mtime.
/// At start it returns whatever was in active/ to incoming/, so a crash
/// never strands mail; a file that a delivery agent of the crashed qmgr
/// still holds (QueueFileHold) is read only when the agent is done and has
/// recorded what it delivered, so a killed qmgr does not deliver twice.
///
/// Scheduling: jobs wait per destination and are taken round-robin over
/// destinations; each remote destination has its own concurrency window
/// (`initial_destination_concurrency` growing to
/// `default_destination_concurrency_limit` while deliveries succeed), and a
/// destination that no server of answers is suspended for
/// `minimal_backoff_time`, its waiting mail deferred, without holding up
/// any other.
///
/// Security: runs as `mail_owner`, chrooted to the spool. It trusts queue
/// files only after their checksum verifies (others go to corrupt/).
///
/// Configuration: `local_process_limit`,
/// `local_destination_concurrency_limit`, `queue_run_delay`,
/// `minimal_backoff_time`, `maximal_backoff_time`, `maximal_queue_lifetime`,
/// `qmgr_message_active_limit`, `smtp_delivery_limit`,
/// `initial_destination_concurrency`, `default_destination_concurrency_limit`,
/// `smtp_destination_recipient_limit`.
///
/// See also: cleanup(8), local(8), docs/INTERNALS.md.
public final class QueueManager: @unchecked Sendable {
    // All mutable state is confined to `eventLoop`.
    let context: DaemonContext
    let logger: Logger
    let spool: SpoolLayout
    let eventLoop: EventLoop
    let alias: LazyIPCClient
    var localSlots: [AgentSlot] = []
    var smtpSlots: [AgentSlot] = []
    var active: [QueueID: ActiveMessage] = [:]
    var localQueue = KeyedJobQueue()
    var smtpQueue = KeyedJobQueue()
    /// Local deliveries in flight per mailbox.
    var inFlightPerKey: [String: Int] = [:]
    var destinations: [String: DestinationState] = [:]
    /// Local deliveries to one user at once: local_destination_concurrency_limit
    /// for mbox (they queue on its lock anyway); every local process for a
    /// Maildir, where deliveries do not lock each other.
    let perKeyLimit: Int
    let initialConcurrency: Int
    let destinationLimit: Int
    let recipientLimit: Int
    let activeLimit: Int
    let minimalBackoff: Int
    let maximalBackoff: Int
    let queueLifetime: Int
    let delayWarningTime: Int
    let queueRunDelay: Int
    var draining = false
    var scanScheduled = false
    /// Deferred mail the last scan found due but could not take for want of
    /// room in the active set (qmgr_message_active_limit): taken as room
    /// comes, before the next scan. `deferredBacklogForced`: a flush.
    var deferredBacklog: ArraySlice<String> = []
    var deferredBacklogForced = false
    /// Messages in active/ that a delivery agent of an earlier qmgr still
    /// holds: tried again every second.
    var heldByAgents: Set<QueueID> = []
    /// How long recipients wait for aliasd to come back before they are
    /// deferred (it is restarted by the master when it dies).
    let resolverRetries = 30

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
        delayWarningTime = config.seconds("delay_warning_time")
        queueRunDelay = max(1, config.seconds("queue_run_delay"))
        initialConcurrency = max(1, config.integer("initial_destination_concurrency"))
        destinationLimit = max(1, config.integer("default_destination_concurrency_limit"))
        recipientLimit = max(1, config.integer("smtp_destination_recipient_limit"))
        let agentCount = max(1, config.integer("local_process_limit"))
        perKeyLimit = config.string("home_mailbox").hasSuffix("/")
            ? agentCount : max(1, config.integer("local_destination_concurrency_limit"))
        localSlots = (0..<agentCount).map { _ in
            AgentSlot(client: LazyIPCClient(path: spool.socket(.local), eventLoop: eventLoop, timeout: .seconds(3600)))
        }
        smtpSlots = (0..<max(1, config.integer("smtp_delivery_limit"))).map { _ in
            AgentSlot(client: LazyIPCClient(path: spool.socket(.smtp), eventLoop: eventLoop, timeout: .seconds(3600)))
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
        let listenFD = context.listenFD()
        try eventLoop.submit { self.recoverActive() }.wait()
        let server = try IPCServer.serve(listenFD: listenFD, group: group) {
            IPCRequestHandler { self.trigger($0) }
        }
        try MasterControl.watch(context, on: eventLoop) {
            self.draining = true
            server.close(promise: nil)
            self.exitIfDrained()
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

    var jobsInFlight: Int { localSlots.filter { $0.busy }.count + smtpSlots.filter { $0.busy }.count }

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
        // Forget destinations that are idle and not suspended (any more):
        // the next delivery starts again at initial_destination_concurrency.
        let now = WallClock.seconds()
        // A flush tries suspended destinations again too (Postfix's flush
        // of dead destinations): the admin has usually just fixed them.
        destinations = destinations.filter { _, state in state.inFlight > 0 || (!force && state.deadUntil > now) }
        if force {
            for key in destinations.keys { destinations[key]?.deadUntil = 0 }
        }
        guard let names = try? FileIO.listDirectory(spool.directory(.deferred)) else { return }
        deferredBacklog = names.sorted()[...]
        deferredBacklogForced = force
        takeDeferred()
    }

    /// Activates due deferred mail from the last scan while there is room.
    func takeDeferred() {
        let now = WallClock.seconds()
        while active.count < activeLimit, !draining, let name = deferredBacklog.popFirst() {
            guard let id = QueueID(name), active[id] == nil,
                  let st = FileIO.stat(spool.file(.deferred, name)), deferredBacklogForced || st.st_mtim.tv_sec <= now else { continue }
            activate(id, from: .deferred)
        }
        // An empty slice still holds the whole scan's array: let it go.
        if deferredBacklog.isEmpty { deferredBacklog = [] }
    }

    /// cleanup reported a new message.
    func queued(_ id: QueueID) {
        guard !draining, active[id] == nil, active.count < activeLimit else { return }
        activate(id, from: .incoming)
    }

    // MARK: Activation

    /// Moves a message to active/ and starts its delivery (`from: .active`:
    /// it is there already, waiting for an earlier qmgr's agent).
    func activate(_ id: QueueID, from queue: SpoolLayout.Queue) {
        let activePath = spool.file(.active, id.rawValue)
        if queue != .active {
            do {
                try FileIO.rename(spool.file(queue, id.rawValue), activePath)
            } catch {
                if !error.isNotFound { logger.warning("\(id): cannot move to active: \(error)") }
                return
            }
        }
        let envelope: QueueEnvelope
        do {
            // Exclusively, for a moment: a delivery agent of a qmgr that
            // died may still be delivering this message (QueueFileHold).
            let fd = try FileIO.open(activePath, O_RDONLY)
            defer { FileIO.close(fd) }
            guard try FileIO.flock(fd, .exclusive, wait: false, path: activePath) else {
                waitForAgent(id)
                return
            }
            let bytes = try FileIO.readAll(fd, path: activePath)
            envelope = try QueueFileReader.parse(bytes)
        } catch let error as QueueFileError {
            logger.warning("\(id): corrupt queue file (\(error)); moved to corrupt/")
            try? FileIO.rename(activePath, spool.file(.corrupt, id.rawValue))
            return
        } catch {
            logger.warning("\(id): cannot read queue file: \(error)")
            try? FileIO.rename(activePath, spool.file(queue == .active ? .incoming : queue, id.rawValue))
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

    /// A delivery agent of an earlier qmgr still holds the message: look
    /// again in a second (it stays in active/, where no scan takes it).
    func waitForAgent(_ id: QueueID) {
        if heldByAgents.insert(id).inserted {
            logger.info("\(id): a delivery agent of the previous qmgr is still delivering this message; waiting for it")
        }
        eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) {
            self.heldByAgents.remove(id)
            guard !self.draining, self.active[id] == nil else { return }
            self.activate(id, from: .active)
        }
    }

    func resolveRecipients(_ message: ActiveMessage) {
        let pending = message.envelope.recipients.indices.filter { !message.envelope.recipients[$0].status.isDone }
        guard !pending.isEmpty else {
            finish(message)
            return
        }
        message.localGroups = [:]
        message.remoteGroups = [:]
        resolve(message, pending, attempt: 1)
    }

    /// Asks aliasd where each recipient goes. Recipients it could not be
    /// asked about (aliasd restarting) are asked again each second for a
    /// while, then deferred.
    func resolve(_ message: ActiveMessage, _ indexes: [Int], attempt: Int) {
        message.resolving = indexes.count
        message.unresolved = []
        for index in indexes {
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
                            let route = RemoteRoute(mailer: resolution.mailer, nexthop: resolution.nexthop)
                            message.remoteGroups[route, default: []].append(index)
                            // The address the server gets: virtusertable or
                            // domaintable may have rewritten it.
                            if !resolution.user.isEmpty { message.remoteAddresses[index] = resolution.user }
                        }
                    } else {
                        let outcome = DeliveryOutcome.deferred(EnhancedStatusCode(4, 3, 0), "address resolver returned an error")
                        message.deferred[index] = outcome
                        self.logResult(message, index, relay: "none", outcome: outcome)
                    }
                case .failure(let error):
                    message.unresolved.append(index)
                    message.resolverError = "\(error)"
                }
                if message.resolving == 0 { self.resolved(message, attempt: attempt) }
            }
        }
    }

    /// Every answer is in: deliver, or ask again about the recipients aliasd
    /// could not be asked about.
    func resolved(_ message: ActiveMessage, attempt: Int) {
        let unresolved = message.unresolved.sorted()
        if !unresolved.isEmpty {
            if attempt < resolverRetries && !draining {
                if attempt == 1 {
                    logger.warning("\(message.id): address resolver unavailable (\(message.resolverError)); trying again")
                }
                message.resolving = unresolved.count
                eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) {
                    self.resolve(message, unresolved, attempt: attempt + 1)
                }
                return
            }
            let outcome = DeliveryOutcome.deferred(EnhancedStatusCode(4, 3, 0), "address resolver unavailable: \(message.resolverError)")
            for index in unresolved {
                message.deferred[index] = outcome
                logResult(message, index, relay: "none", outcome: outcome)
            }
        }
        schedule(message)
    }

    /// Every recipient of the message is resolved: queue its jobs.
    func schedule(_ message: ActiveMessage) {
        for (user, indexes) in message.localGroups.sorted(by: { $0.key < $1.key }) {
            for index in indexes {
                message.outstanding += 1
                localQueue.append(DeliveryJob(message: message, recipientIndexes: [index], transport: .local, concurrencyKey: user))
            }
        }
        let now = WallClock.seconds()
        for (route, indexes) in message.remoteGroups.sorted(by: { $0.key < $1.key }) {
            let key = route.nexthop.lowercased()
            var start = 0
            while start < indexes.count {
                let chunk = Array(indexes[start..<min(indexes.count, start + recipientLimit)])
                start += recipientLimit
                let job = DeliveryJob(message: message, recipientIndexes: chunk,
                                      transport: .smtp(mailer: route.mailer, nexthop: route.nexthop), concurrencyKey: key)
                if let state = destinations[key], state.deadUntil > now {
                    suspend(job, reason: state.lastFailure)
                    continue
                }
                message.outstanding += 1
                smtpQueue.append(job)
            }
        }
        if message.outstanding == 0 { finish(message) } else { dispatch() }
    }

    // MARK: Delivery

    func dispatch() {
        while !localQueue.isEmpty, let slot = localSlots.first(where: { !$0.busy }),
              let job = localQueue.next(where: { (inFlightPerKey[$0] ?? 0) < perKeyLimit }) {
            start(job, on: slot)
        }
        guard !smtpQueue.isEmpty else { return }
        let now = WallClock.seconds()
        while let slot = smtpSlots.first(where: { !$0.busy }),
              let job = smtpQueue.next(where: { key in
                  (destinations[key] ?? DestinationState(initial: initialConcurrency)).canStart(limit: destinationLimit, now: now)
              }) {
            start(job, on: slot)
        }
    }

    func start(_ job: DeliveryJob, on slot: AgentSlot) {
        slot.busy = true
        let envelope = job.message.envelope
        let (seconds, micros) = WallClock.now()
        let arrival = envelope.arrivalSeconds * 1_000_000 + envelope.arrivalMicroseconds
        let frame: IPCFrame
        switch job.transport {
        case .local:
            inFlightPerKey[job.concurrencyKey, default: 0] += 1
            frame = LocalProtocol.Request(
                queueID: job.message.id, sender: envelope.sender, arrivalSeconds: envelope.arrivalSeconds,
                contentOffset: envelope.contentOffset, contentLength: envelope.contentLength,
                recipients: job.recipientIndexes.map {
                    LocalProtocol.Recipient(index: $0, address: envelope.recipients[$0].address,
                                            originalRecipient: envelope.recipients[$0].originalRecipient,
                                            localUser: job.message.localUsers[$0] ?? "")
                },
                arrivalMicroseconds: arrival, activatedAt: job.message.activatedAt,
                dispatchedAt: seconds * 1_000_000 + micros).frame
        case .smtp(let mailer, let nexthop):
            destinations[job.concurrencyKey, default: DestinationState(initial: initialConcurrency)].inFlight += 1
            frame = SMTPDeliveryProtocol.Request(
                queueID: job.message.id, sender: envelope.sender, mailer: mailer, nexthop: nexthop,
                recipients: job.recipientIndexes.map {
                    SMTPDeliveryProtocol.Recipient(index: $0, address: job.message.remoteAddresses[$0] ?? envelope.recipients[$0].address,
                                                   notify: DSNNotify(rawValue: envelope.recipients[$0].notify).description,
                                                   originalRecipient: envelope.recipients[$0].orcpt)
                },
                contentOffset: envelope.contentOffset, contentLength: envelope.contentLength,
                bodyType: envelope[info: .bodyType] ?? "", smtpUTF8: envelope[info: .smtpUTF8] == "yes",
                ret: envelope[info: .dsnRet] ?? "",
                envid: envelope[info: .dsnEnvid] ?? "", arrivalMicroseconds: arrival,
                activatedAt: job.message.activatedAt, dispatchedAt: seconds * 1_000_000 + micros).frame
        }
        slot.client.request(frame, idempotent: false).assumeIsolated().whenComplete { result in
            slot.busy = false
            switch job.transport {
            case .local:
                self.inFlightPerKey[job.concurrencyKey, default: 1] -= 1
                if self.inFlightPerKey[job.concurrencyKey] == 0 { self.inFlightPerKey[job.concurrencyKey] = nil }
            case .smtp:
                self.destinations[job.concurrencyKey]?.inFlight -= 1
            }
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
            switch job.transport {
            case .local:
                if let reply = try? LocalProtocol.Result(frame: frame) {
                    message.noteSuccesses(reply)
                    recordAll(job, reply.outcomes.map { ($0.index, $0.outcome) })
                } else {
                    recordAll(job, [], missing: .deferred(EnhancedStatusCode(4, 3, 0), "delivery agent protocol error"))
                }
            case .smtp:
                guard let reply = try? SMTPDeliveryProtocol.Result(frame: frame) else {
                    recordAll(job, [], missing: .deferred(EnhancedStatusCode(4, 3, 0), "delivery agent protocol error"))
                    break
                }
                for outcome in reply.outcomes where job.recipientIndexes.contains(outcome.index) && !outcome.remoteMTA.isEmpty {
                    message.remoteReplies[outcome.index] = (outcome.remoteMTA, outcome.diagnostic)
                }
                message.noteSuccesses(SMTPDeliveryProtocol.Result(
                    outcomes: reply.outcomes.filter { job.recipientIndexes.contains($0.index) }, peerDSN: reply.peerDSN))
                recordAll(job, reply.outcomes.map { ($0.index, $0.outcome) })
                feedback(job, reply)
            }
        case .failure(let error):
            // The agent died or hung mid-delivery. What it delivered, it
            // marked in the queue file first (QueueFileHold); the rest may
            // have been delivered too, so trying again soon risks a
            // duplicate, never a loss.
            let marked = QueueFileHold.delivered(job.recipientIndexes, of: message.envelope,
                                                 path: spool.file(.active, message.id.rawValue))
            for index in marked {
                let outcome = DeliveryOutcome.delivered(EnhancedStatusCode(2, 0, 0), "delivered; the agent died before it could say so")
                record(message, index, outcome)
                logResult(message, index, relay: job.transport == .local ? "local" : "none", outcome: outcome)
            }
            var retry = job
            retry.recipientIndexes.removeAll { marked.contains($0) }
            guard !retry.recipientIndexes.isEmpty else { break }
            retry.agentFailures += 1
            let what = job.transport == .local ? "local delivery agent" : "smtp-client"
            if retry.agentFailures < 3 && !draining {
                logger.warning("\(message.id): \(what) failed (\(error)); retrying")
                message.outstanding += 1
                eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(200 * Int64(retry.agentFailures))) {
                    if retry.transport == .local { self.localQueue.append(retry) } else { self.smtpQueue.append(retry) }
                    self.dispatch()
                }
            } else {
                recordAll(retry, [], missing: .deferred(EnhancedStatusCode(4, 3, 0), "\(what) failed: \(error)"))
            }
        }
        if message.isSettled { finish(message) }
    }

    /// Records an agent's outcomes; a recipient it said nothing about is
    /// tried again later.
    func recordAll(_ job: DeliveryJob, _ outcomes: [(Int, DeliveryOutcome)],
                   missing: DeliveryOutcome = .deferred(EnhancedStatusCode(4, 3, 0), "no result from the delivery agent")) {
        var seen = Set<Int>()
        for (index, outcome) in outcomes where job.recipientIndexes.contains(index) && !seen.contains(index) {
            seen.insert(index)
            record(job.message, index, outcome)
        }
        for index in job.recipientIndexes where !seen.contains(index) {
            record(job.message, index, missing)
            logResult(job.message, index, relay: "none", outcome: missing)
        }
    }

    /// A destination's concurrency follows its results; one no server of
    /// answers is suspended, and the mail waiting for it is deferred.
    func feedback(_ job: DeliveryJob, _ result: SMTPDeliveryProtocol.Result) {
        let key = job.concurrencyKey
        var state = destinations[key] ?? DestinationState(initial: initialConcurrency)
        defer {
            destinations[key] = state
            if state.inFlight == 0 && state.deadUntil == 0 && state.window >= Double(initialConcurrency) && smtpQueue.isEmpty {
                // Nothing to remember about a healthy idle destination.
                destinations[key] = nil
            }
        }
        guard result.destinationFailed else {
            state.succeeded(limit: destinationLimit)
            return
        }
        let reason = result.outcomes.first?.outcome.text ?? "destination unreachable"
        let now = WallClock.seconds()
        guard state.failed(reason: reason, now: now, suspendFor: minimalBackoff) else { return }
        logger.info("\(key): delivery temporarily suspended for \(DurationText.describe(minimalBackoff)): \(reason)")
        destinations[key] = state
        var touched: [ActiveMessage] = []
        for waiting in smtpQueue.removeAll(for: key) {
            waiting.message.outstanding -= 1
            suspend(waiting, reason: reason)
            if !touched.contains(where: { $0 === waiting.message }) { touched.append(waiting.message) }
        }
        // The job's own message is finished by its completion.
        for message in touched where message !== job.message && message.isSettled { finish(message) }
    }

    /// Defers a job's recipients without trying: their destination is
    /// suspended.
    func suspend(_ job: DeliveryJob, reason: String) {
        let outcome = DeliveryOutcome.deferred(EnhancedStatusCode(4, 4, 1), "delivery temporarily suspended: \(reason)")
        for index in job.recipientIndexes {
            record(job.message, index, outcome)
            logResult(job.message, index, relay: "none", outcome: outcome)
        }
    }

    func record(_ message: ActiveMessage, _ index: Int, _ outcome: DeliveryOutcome) {
        switch outcome {
        case .delivered:
            // The agent marked it in the queue file already (QueueFileHold);
            // the fsync comes when the file is kept (finalize).
            message.mark(index, .delivered)
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
        let age = now - message.envelope.arrivalSeconds
        if age < queueLifetime && delayWarningTime > 0 && age >= delayWarningTime {
            let due = message.deferred.keys.filter { message.envelope.recipients[$0].status == .pending }.sorted()
            if !due.isEmpty {
                warnOfDelay(message, due, now: now)
                return
            }
        }
        finishFailures(message, now: now)
    }

    /// The delay warning (RFC 3464 `Action: delayed`) for recipients still
    /// waiting after `delay_warning_time`, once per recipient: it is marked
    /// in the queue file before the message is put back.
    func warnOfDelay(_ message: ActiveMessage, _ due: [Int], now: Int) {
        let events = due.map { message.event($0, message.deferred[$0]!, time: now) }
        let until = WallClock.localTime(message.envelope.arrivalSeconds + queueLifetime).rfc5322
        let warning = DeliveryStatusNotification.DelayWarning(warnedAfter: delayWarningTime, queueLifetime: queueLifetime,
                                                              willRetryUntil: until)
        BounceNotice.send(.delay, events: events, for: message, manager: self, delayWarning: warning)
            .assumeIsolated().whenComplete { result in
                switch result {
                case .success(let noticeID):
                    if let noticeID { self.logger.info("\(message.id): sender delay notification: \(noticeID)") }
                    for index in due { message.mark(index, .pendingWarned) }
                case .failure(let error):
                    // Not marked: the next pass tries again.
                    self.logger.warning("\(message.id): cannot queue the delay notification: \(error)")
                }
                self.finishFailures(message, now: now)
            }
    }

    func finishFailures(_ message: ActiveMessage, now: Int) {
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

    func finalize(_ message: ActiveMessage) {
        let now = WallClock.seconds()
        let activePath = spool.file(.active, message.id.rawValue)
        if message.envelope.recipients.allSatisfy({ $0.status.isDone }) {
            do {
                try FileIO.unlink(activePath)
                _ = unlink(spool.deferDirectory + "/" + message.id.rawValue)
                _ = unlink(spool.deliveredMembersFile(message.id.rawValue))
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
            for recipient in message.envelope.recipients where recipient.status != .pending {
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
            self.takeDeferred()
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

extension QueueManager {
    /// A wake-up on `private/qmgr`, which has no reply: from cleanup, "this
    /// queue ID is in incoming/"; a flush request, "try the deferred queue
    /// now". Anything else is ignored.
    func trigger(_ frame: IPCFrame) -> [IPCFrame] {
        if frame.type == .qmgrFlush {
            eventLoop.execute { self.scanDeferred(force: true) }
        } else if frame.type == .qmgrQueued, let text = frame.string(.queueID), let id = QueueID(text) {
            eventLoop.execute { self.queued(id) }
        }
        return []
    }
}
