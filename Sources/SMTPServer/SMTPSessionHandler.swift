import DaemonSkeleton
import HikyakuIPC
import HikyakuSystem
import Logging
import MailCore
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import SMTPProtocol

/// Carries out one SMTP session: bytes in, the pure state machine decides,
/// this handler does the I/O it asks for (aliasd lookups, cleanup streaming)
/// and writes the replies. It is the only parser of the input stream, so the
/// switch between command lines and DATA content happens at exactly the right
/// byte, whatever a client pipelines.
final class SMTPSessionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// RFC 5321 allows 512 octets per command line; like sendmail we allow
    /// more for long parameter lists, and refuse beyond this.
    static let commandLineLimit = 2048

    let server: SMTPServerShared
    var machine: SMTPServerStateMachine
    let identity: ClientIdentity
    var context: ChannelHandlerContext!
    var input: ByteBuffer
    var waiting = false
    var closing = false
    var discardingLongLine = false
    var framer = DataFramer()
    var decoder = ChunkDecoder()
    /// A BDAT chunk being read: octets still to come, whether it is the
    /// last, and for a refused one the replies to give once it is read.
    var chunk: ChunkInProgress? = nil
    struct ChunkInProgress {
        var left: Int
        let last: Bool
        let refused: (replies: [SMTPReply], close: Bool)?
    }
    /// The greeting has not gone out: the greet pause or the TCP wrappers'
    /// verdict is awaited, and a client that speaks now is refused.
    var greetingPending = false
    var greetPauseOver = false
    var wrappersVerdict: SMTPServerStateMachine.RecipientVerdict? = nil
    var dataOutput: [UInt8] = []
    var queueID: QueueID? = nil
    var cleanup: LazyIPCClient? = nil
    /// The connection that carries the open transaction. Content and commit
    /// must reach the same cleanup that created the file, so they never go
    /// through a reconnecting client.
    var transactionClient: IPCClient? = nil
    var idleTimer: Scheduled<Void>? = nil
    var counts: [(verb: String, total: Int, ok: Int)] = []
    var connectLogged = false
    /// The negotiated version once TLS is up, for the log and Received:.
    var tlsVersion: String? = nil
    /// An implicit-TLS port (smtps, 465): TLS from the first byte.
    let implicitTLS: Bool
    /// Counted by the per-client limits (released when the session ends).
    var admitted = false
    /// TLS was started (STARTTLS or an implicit-TLS port) and the handshake
    /// is not done: the idle timer ends the connection without a reply.
    var awaitingHandshake = false
    /// The end of the time allowed for the message being received.
    var dataDeadline: Scheduled<Void>? = nil
    /// Message content written to cleanup that its socket has not taken
    /// yet. Above `contentHighWater` smtpd stops taking content from the
    /// client until cleanup catches up to `contentLowWater`.
    var contentInFlight = 0
    var contentThrottled = false
    static let contentHighWater = 4 * IPCFrame.maximumChunk
    static let contentLowWater = IPCFrame.maximumChunk
    /// The channel asked to read while input was paused: the read is made
    /// when input resumes.
    var readHeld = false

    init(server: SMTPServerShared, remote: SocketAddress?, settings: SMTPServerStateMachine.Settings? = nil,
         implicitTLS: Bool = false) {
        self.server = server
        self.implicitTLS = implicitTLS
        machine = SMTPServerStateMachine(settings: settings ?? server.settings)
        if implicitTLS {
            machine.beginsInTLS()
            awaitingHandshake = true
        }
        identity = ClientIdentity(remote: remote)
        input = ByteBuffer()
    }

    var logger: Logger { server.logger }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        input = context.channel.allocator.buffer(capacity: 1024)
    }

    func channelActive(context: ChannelHandlerContext) {
        server.sessionStarted()
        if let refusal = server.limits.admit(identity.address, now: WallClock.seconds()) {
            let text: String
            switch refusal {
            case .busy: text = "\(server.hostname) Error: too many connections, try again later"
            case .tooManyConnections, .connectionRate: text = "\(server.hostname) Error: too many connections from \(identity.address)"
            }
            logger.warning("\(identity.logName): \(refusal == .busy ? "session limit reached" : refusal == .connectionRate ? "connection rate limit exceeded" : "connection count limit exceeded"); refused with 421")
            closing = true
            write([SMTPReply(421, EnhancedStatusCode(4, 7, 0), text)])
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                channel.close(promise: nil)
            }
            connectLogged = true
            context.fireChannelActive()
            return
        }
        admitted = true
        let lookup = identity.lookUp(pool: server.lookupPool, on: context.eventLoop, timeout: server.lookupTimeout)
        lookup.assumeIsolated().whenComplete { _ in self.logConnect() }
        resetIdleTimer()
        // The greeting waits for the greet pause (not for the local host)
        // and for the TCP wrappers' verdict, which may need the client's name.
        greetingPending = true
        let pause = identity.isLoopbackHost ? TimeAmount.zero : server.greetPause
        if pause > .zero {
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: pause) {
                loopBound.value.greetPauseOver = true
                loopBound.value.greetIfReady()
            }
        } else {
            greetPauseOver = true
        }
        if server.checksHostsAccess {
            checkHostsAccess(after: lookup)
        } else {
            wrappersVerdict = .accept
        }
        greetIfReady()
        context.fireChannelActive()
    }

    /// TCP wrappers: aliasd reads /etc/hosts.allow and /etc/hosts.deny and
    /// judges the client under the daemon names smtpd and sendmail. It is
    /// asked at once; only when its rules look at names does the answer wait
    /// for the client's reverse lookup.
    func checkHostsAccess(after lookup: EventLoopFuture<Void>, nameKnown: Bool = false) {
        let eventLoop = context.eventLoop
        let check = AliasProtocol.RecipientCheck(
            clientAddress: identity.address, clientName: identity.name,
            clientResolve: nameKnown || identity.isLoopback ? identity.resolve.rawValue : "PENDING", sender: "", recipient: "")
        server.aliasClient(for: eventLoop).request(check.frame(type: .aliasCheckClient)).assumeIsolated().whenComplete { result in
            var verdict = SMTPServerStateMachine.RecipientVerdict.reject(
                SMTPReply(421, EnhancedStatusCode(4, 3, 0), "\(self.server.hostname) Error: temporary lookup failure, try again later"))
            switch result {
            case .success(let frame) where AliasProtocol.isClientNameNeeded(frame) && !nameKnown:
                lookup.assumeIsolated().whenComplete { _ in self.checkHostsAccess(after: lookup, nameKnown: true) }
                return
            case .success(let frame):
                switch try? AliasProtocol.RecipientVerdict(frame: frame) {
                case .accept, .discard: verdict = .accept
                case .reject(let reply): verdict = .reject(reply)
                case nil: self.logger.warning("aliasd: bad answer to a client check")
                }
            case .failure(let error):
                self.logger.warning("aliasd lookup failed: \(error)")
            }
            self.wrappersVerdict = verdict
            self.greetIfReady()
        }
    }

    /// Sends the greeting once the pause is over and the client is allowed;
    /// refuses a client that spoke first or that TCP wrappers deny.
    func greetIfReady() {
        guard greetingPending, !closing, greetPauseOver, let verdict = wrappersVerdict,
              context.channel.isActive else { return }
        greetingPending = false
        if case .reject(let reply) = verdict {
            logConnect()
            logger.warning("NOQUEUE: reject: CONNECT from \(identity.logName): \(reply)")
            write([reply])
            closeAfterFlush()
            return
        }
        if input.readableBytes > 0 {
            logConnect()
            logger.warning("NOQUEUE: reject: CONNECT from \(identity.logName): client sent \(input.readableBytes) bytes before the greeting")
            input.clear()
            perform(machine.spokeBeforeGreeting())
            context.flush()
            return
        }
        perform(machine.greeting())
        context.flush()
    }

    func logConnect() {
        guard !connectLogged else { return }
        connectLogged = true
        logger.info("connect from \(identity.logName)")
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        dataDeadline?.cancel()
        if admitted { server.limits.release(identity.address, now: WallClock.seconds()) }
        guard admitted else {
            server.sessionEnded()
            context.fireChannelInactive()
            return
        }
        // An open transaction never reached 250: cleanup discards its file
        // when the connection goes.
        transactionClient?.close()
        cleanup?.close()
        logConnect()
        let summary = counts.map { $0.ok == $0.total ? "\($0.verb)=\($0.total)" : "\($0.verb)=\($0.ok)/\($0.total)" }
        let total = counts.reduce(0) { $0 + $1.total }
        let okTotal = counts.reduce(0) { $0 + $1.ok }
        let commands = okTotal == total ? "commands=\(total)" : "commands=\(okTotal)/\(total)"
        logger.info("disconnect from \(identity.logName)\(summary.isEmpty ? "" : " " + summary.joined(separator: " ")) \(commands)")
        server.sessionEnded()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard !closing else { return }
        if greetingPending {
            // Kept only to be counted: the client will be refused.
            if input.readableBytes < Self.commandLineLimit { input.writeBuffer(&buffer) }
            return
        }
        // Message content that keeps coming keeps the session alive; command
        // bytes do not until a whole line has come (no slow trickling).
        if machine.isReceivingData || chunk != nil { resetIdleTimer() }
        input.writeBuffer(&buffer)
        process()
    }

    /// Backpressure: nothing more is read from the client while smtpd waits
    /// for an answer (aliasd, cleanup, Dovecot, DNS) or while cleanup has not
    /// taken the content already sent, so a session holds at most one read's
    /// worth of input however much a client sends. (A TLS handshake in
    /// progress needs its reads.)
    func read(context: ChannelHandlerContext) {
        if inputPaused {
            readHeld = true
        } else {
            context.read()
        }
    }

    /// Replies the client does not read count too: while the channel holds
    /// more unsent output than its high-water mark, nothing is read.
    var inputPaused: Bool {
        (waiting && !awaitingHandshake) || contentThrottled || !context.channel.isWritable
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && !closing {
            // What was read before the pause may hold further commands.
            if !waiting && !contentThrottled { process() } else { readIfHeld() }
        }
        context.fireChannelWritabilityChanged()
    }

    func readIfHeld() {
        guard readHeld, !inputPaused, !closing else { return }
        readHeld = false
        context.read()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls {
            // A client that hangs up without close_notify: common, harmless.
        } else if error is NIOSSLError || error is BoringSSLError {
            logger.info("TLS handshake or session failed with \(identity.logName): \(error)")
        }
        context.close(promise: nil)
    }

    /// smtpd_data_time_limit: the whole message, however steadily it comes.
    func startDataDeadline() {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        dataDeadline = context.eventLoop.scheduleTask(in: server.dataTimeLimit) {
            let handler = loopBound.value
            guard !handler.closing, handler.machine.isReceivingData || handler.machine.hasOpenMessage else { return }
            handler.logger.info("\(handler.identity.logName): message not complete within smtpd_data_time_limit; dropped")
            handler.abortOpenTransaction()
            handler.write([SMTPReply(421, EnhancedStatusCode(4, 4, 2), "\(handler.server.hostname) Error: timeout exceeded")])
            handler.closeAfterFlush()
        }
    }

    func resetIdleTimer() {
        idleTimer?.cancel()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: server.idleTimeout) {
            let handler = loopBound.value
            if handler.awaitingHandshake {
                // No reply can be read in the middle of a handshake.
                handler.logger.info("\(handler.identity.logName): TLS handshake not done within smtpd_timeout; disconnected")
                handler.closing = true
                handler.context.close(promise: nil)
            } else if handler.waiting || handler.contentThrottled {
                handler.resetIdleTimer()
            } else if !handler.closing {
                handler.abortOpenTransaction()
                handler.perform(handler.machine.timedOut())
            }
        }
    }

    // MARK: Input processing

    func process() {
        while !waiting && !closing {
            if contentInFlight > Self.contentHighWater {
                // Resumed by flushContent's completions.
                contentThrottled = true
                break
            }
            // A client that does not read its replies: resumed by
            // channelWritabilityChanged.
            if !context.channel.isWritable { break }
            if (machine.isReceivingData || chunk != nil) && dataDeadline == nil { startDataDeadline() }
            if let current = chunk {
                if current.left > 0 {
                    guard input.readableBytes > 0 else { break }
                    readChunk()
                    continue
                }
                finishChunk(current)
                continue
            }
            if machine.isReceivingData {
                guard input.readableBytes > 0 else { break }
                let event = input.withUnsafeReadableBytes { framer.feed($0, into: &dataOutput) }
                if server.settings.messageSizeLimit > 0 && framer.contentSize > server.settings.messageSizeLimit {
                    // Keep reading to the end of data, but stop storing.
                    dataOutput.removeAll(keepingCapacity: true)
                } else if dataOutput.count >= IPCFrame.maximumChunk {
                    flushContent()
                }
                switch event {
                case .needMore:
                    input.clear()
                case .end(let consumed):
                    input.moveReaderIndex(forwardBy: consumed)
                    flushContent()
                    perform(machine.dataEnded(.complete(size: framer.contentSize)))
                case .bareLineEnding(let bareLF):
                    input.clear()
                    dataOutput.removeAll()
                    perform(machine.dataEnded(.bareLineEnding(bareLF: bareLF)))
                }
                continue
            }
            guard let newline = input.readableBytesView.firstIndex(of: 10) else {
                if input.readableBytes > Self.commandLineLimit {
                    input.clear()
                    if !discardingLongLine {
                        discardingLongLine = true
                        count("unknown", ok: false)
                        perform(machine.lineTooLong())
                    }
                }
                break
            }
            var line = input.readableBytesView[input.readerIndex..<newline]
            input.moveReaderIndex(to: newline + 1)
            if discardingLongLine {
                discardingLongLine = false
                continue
            }
            if line.last == 13 { line = line.dropLast() }
            if line.count > Self.commandLineLimit {
                count("unknown", ok: false)
                perform(machine.lineTooLong())
                continue
            }
            // An AUTH exchange's lines are answers, not commands: they count
            // as part of the AUTH.
            let inExchange = machine.isAuthenticating
            let verb = inExchange ? "auth" : Self.verb(of: line)
            // RFC 2920: did the client send more without waiting for this reply?
            let pipelined = input.readableBytes > 0 && !identity.isLoopbackHost
            let action = machine.receive(line: line, pipelined: pipelined)
            if action.refusesImproperPipelining {
                logger.warning("NOQUEUE: reject: \(verb.uppercased()) from \(identity.logName): improper use of SMTP command pipelining")
            }
            if case .send(let replies, _) = action, verb == "auth", replies.first?.code == 535 {
                // Refused before Dovecot was asked (a malformed PLAIN message).
                server.noteAuthFailure(identity.address)
                logger.warning("\(identity.logName): SASL PLAIN authentication failed: malformed message")
            }
            if !action.isContinuation { countCommand(verb, action) }
            resetIdleTimer()
            perform(action)
        }
        if input.readableBytes == 0 { input.clear() } else if input.readerIndex > 65536 { input.discardReadBytes() }
        context.flush()
        readIfHeld()
    }

    static let knownVerbs: Set<String> = ["helo", "ehlo", "mail", "rcpt", "data", "bdat", "rset", "noop", "quit", "help", "vrfy", "starttls", "auth"]

    /// Takes what has come of the current BDAT chunk.
    func readChunk() {
        guard var current = chunk else { return }
        let n = min(current.left, input.readableBytes)
        if current.refused == nil {
            input.withUnsafeReadableBytes { decoder.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n]), into: &dataOutput) }
            if server.settings.messageSizeLimit > 0 && decoder.contentSize > server.settings.messageSizeLimit {
                // Keep reading the chunk, but stop storing.
                dataOutput.removeAll(keepingCapacity: true)
            } else if dataOutput.count >= IPCFrame.maximumChunk || queueID == nil {
                flushContent()
            }
        }
        input.moveReaderIndex(forwardBy: n)
        current.left -= n
        chunk = current
    }

    /// The whole chunk is in: the refused one's replies, or the machine's
    /// next step.
    func finishChunk(_ current: ChunkInProgress) {
        chunk = nil
        if let refused = current.refused {
            write(refused.replies)
            if refused.close { closeAfterFlush() }
            return
        }
        if current.last { decoder.finish(into: &dataOutput) }
        flushContent()
        perform(machine.chunkReceived(totalSize: decoder.contentSize))
    }

    static func verb(of line: ByteBufferView.SubSequence) -> String {
        let word = line.prefix(while: { $0 != 32 && $0 != 9 }).prefix(8)
        let text = String(decoding: word, as: UTF8.self).lowercased()
        return knownVerbs.contains(text) ? text : "unknown"
    }

    func countCommand(_ verb: String, _ action: SMTPServerStateMachine.Action) {
        switch action {
        case .send(let replies, _):
            count(verb, ok: replies.first.map { $0.code < 400 } ?? true)
        case .verifyRecipient, .verifySender, .openMessage, .authenticate:
            // Counted when the result is known.
            break
        case .discardChunk:
            count(verb, ok: false)
        default:
            count(verb, ok: true)
        }
    }

    func count(_ verb: String, ok: Bool) {
        if let index = counts.firstIndex(where: { $0.verb == verb }) {
            counts[index].total += 1
            if ok { counts[index].ok += 1 }
        } else {
            counts.append((verb, 1, ok ? 1 : 0))
        }
    }

    // MARK: Actions

    func write(_ replies: [SMTPReply]) {
        for reply in replies {
            var buffer = context.channel.allocator.buffer(capacity: 64)
            buffer.writeString(reply.wireText(enhancedStatusCodes: true))
            context.write(wrapOutboundOut(buffer), promise: nil)
        }
    }

    func perform(_ action: SMTPServerStateMachine.Action) {
        switch action {
        case .send(let replies, let close):
            write(replies)
            if close { closeAfterFlush() }

        case .verifyRecipient(let recipient):
            verify(recipient)

        case .verifySender(let sender):
            verifySender(sender)

        case .openMessage(let envelope):
            open(envelope)

        case .commitMessage:
            commit()

        case .abortMessage(let replies, let close):
            abortOpenTransaction()
            write(replies)
            if close { closeAfterFlush() }

        case .startTLS(let reply):
            startTLS(reply)

        case .authenticate(let credentials, let mechanism):
            authenticate(credentials, mechanism: mechanism)

        case .receiveChunk(let size, let last):
            chunk = ChunkInProgress(left: size, last: last, refused: nil)

        case .discardChunk(let size, let replies, let abort, let close):
            if abort { abortOpenTransaction() }
            chunk = ChunkInProgress(left: size, last: false, refused: (replies, close))
        }
    }

    // MARK: AUTH

    /// Checks credentials with Dovecot's authentication service. A client
    /// that failed too often lately (smtpd_client_auth_failure_limit) is
    /// refused without asking; every failure is logged with its address.
    func authenticate(_ credentials: SASLCredentials, mechanism: String) {
        waiting = true
        let address = identity.address
        if server.authFailuresExceeded(address) {
            logger.warning("\(identity.logName): SASL \(mechanism) authentication refused: too many failures from this client")
            count("auth", ok: false)
            waiting = false
            perform(machine.authenticationFinished(.failure("too many failed attempts from this address, try later")))
            return
        }
        let local = context.channel.localAddress?.ipAddress ?? ""
        DovecotAuthClient.authenticate(path: server.saslPath, credentials: credentials, clientAddress: address,
                                       localAddress: local, secured: machine.tlsActive, on: context.eventLoop,
                                       timeout: .seconds(30))
            .assumeIsolated().whenSuccess { result in
                switch result {
                case .success: self.count("auth", ok: true)
                case .failure, .unavailable: self.count("auth", ok: false)
                }
                switch result {
                case .success(let user):
                    self.logger.info("\(self.identity.logName): sasl_method=\(mechanism), sasl_username=\(user)")
                case .failure(let reason):
                    self.server.noteAuthFailure(address)
                    self.logger.warning("\(self.identity.logName): SASL \(mechanism) authentication failed: \(reason.isEmpty ? "authentication failed" : reason)")
                case .unavailable(let reason):
                    self.logger.warning("SASL authentication service unavailable: \(reason)")
                }
                self.resume { self.perform(self.machine.authenticationFinished(result)) }
            }
    }

    // MARK: TLS

    /// STARTTLS (RFC 3207): the 220 goes out in plain text, then whatever
    /// the client pipelined after the command is thrown away unread, so no
    /// plain-text command is ever answered inside TLS (CVE-2011-0411), and
    /// TLS is put under the session.
    func startTLS(_ reply: SMTPReply) {
        guard let tlsContext = server.tlsContext else {
            write([SMTPReply(454, EnhancedStatusCode(4, 7, 0), "TLS not available due to local problem")])
            return
        }
        write([reply])
        context.flush()
        if input.readableBytes > 0 {
            logger.warning("\(identity.logName): \(input.readableBytes) bytes sent after STARTTLS were discarded")
        }
        input.clear()
        waiting = true
        awaitingHandshake = true
        resetIdleTimer()
        do {
            try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext), position: .first)
            // The handshake needs reads whatever was held before it began.
            readHeld = false
            context.read()
        } catch {
            logger.warning("cannot start TLS for \(identity.logName): \(error)")
            closeAfterFlush()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            let version: String
            switch (try? context.pipeline.syncOperations.nioSSL_tlsVersion()) ?? nil {
            case .tlsv13: version = "TLSv1.3"
            case .tlsv12: version = "TLSv1.2"
            case .tlsv11: version = "TLSv1.1"
            case .tlsv1: version = "TLSv1"
            case nil: version = "TLS"
            }
            tlsVersion = version
            awaitingHandshake = false
            resetIdleTimer()
            logger.info("\(version) connection established from \(identity.logName)")
            if implicitTLS {
                // The greeting was written before the handshake and waits in
                // the TLS handler; nothing else to do.
                return
            }
            machine.tlsStarted()
            waiting = false
            process()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func closeAfterFlush() {
        closing = true
        idleTimer?.cancel()
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// Runs `body` when an asynchronous step completes, then resumes input.
    func resume(_ body: () -> Void) {
        waiting = false
        guard context.channel.isActive else { return }
        body()
        process()
    }

    func senderText(_ envelope: SMTPServerStateMachine.Envelope?) -> String {
        envelope?.sender.map { $0.description } ?? ""
    }

    func verify(_ recipient: MailAddress) {
        waiting = true
        let qualified = recipient.qualified(with: server.origin)
        let eventLoop = context.eventLoop
        let envelope = machine.currentEnvelope
        let first = (envelope?.recipients.isEmpty ?? true) && (envelope?.discardedRecipients ?? 0) == 0
        if let exceeded = server.limits.allowRecipient(identity.address, firstOfMessage: first, now: WallClock.seconds()) {
            logger.warning("\(identity.logName): \(exceeded); RCPT refused")
            let reply = exceeded.hasPrefix("too much mail")
                ? SMTPReply(452, EnhancedStatusCode(4, 3, 2), "Error: \(exceeded)")
                : SMTPReply(452, EnhancedStatusCode(4, 5, 3), "Error: \(exceeded)")
            // Decided at once: the input loop that called us goes on.
            waiting = false
            perform(machine.recipientVerified(.reject(reply)))
            return
        }
        // sendmail's checks need the client's name and how it resolved; the
        // lookup started with the session and is bounded by its timeout.
        let lookup = identity.lookUp(pool: server.lookupPool, on: eventLoop, timeout: server.lookupTimeout)
        lookup.assumeIsolated().whenComplete { _ in
            let check = AliasProtocol.RecipientCheck(
                clientAddress: self.identity.policyAddress, clientName: self.identity.name,
                clientResolve: self.identity.resolve.rawValue,
                sender: self.senderText(self.machine.currentEnvelope), recipient: qualified.description,
                authenticatedUser: self.machine.authenticatedUser ?? "")
            self.server.aliasClient(for: eventLoop).request(check.frame()).assumeIsolated().whenComplete { result in
                self.verified(qualified, result)
            }
        }
    }

    func verified(_ qualified: MailAddress, _ result: Result<IPCFrame, Error>) {
            self.resume {
                let verdict: SMTPServerStateMachine.RecipientVerdict
                switch result {
                case .success(let frame):
                    switch try? AliasProtocol.RecipientVerdict(frame: frame) {
                    case .accept: verdict = .accept
                    case .discard: verdict = .discard
                    case .reject(let reply): verdict = .reject(reply)
                    case nil: verdict = self.lookupFailure(qualified)
                    }
                case .failure(let error):
                    self.logger.warning("aliasd lookup failed: \(error)")
                    verdict = self.lookupFailure(qualified)
                }
                if case .reject(let reply) = verdict {
                    let envelope = self.machine.currentEnvelope
                    self.logger.info("NOQUEUE: reject: RCPT from \(self.identity.logName): \(reply); from=<\(self.senderText(envelope))> to=<\(qualified)> proto=\(envelope?.esmtp == true ? "ESMTP" : "SMTP") helo=<\(envelope?.heloName ?? "")>")
                }
                if case .discard = verdict {
                    self.logger.info("NOQUEUE: discard: RCPT from \(self.identity.logName): <\(qualified)>: Recipient address discarded by the access map")
                }
                let action = self.machine.recipientVerified(verdict)
                self.countCommand("rcpt", action)
                self.perform(action)
            }
    }

    /// Without delay_checks: the client and the sender are judged at MAIL.
    func verifySender(_ sender: MailAddress?) {
        waiting = true
        let eventLoop = context.eventLoop
        let lookup = identity.lookUp(pool: server.lookupPool, on: eventLoop, timeout: server.lookupTimeout)
        lookup.assumeIsolated().whenComplete { _ in
            let check = AliasProtocol.RecipientCheck(
                clientAddress: self.identity.policyAddress, clientName: self.identity.name,
                clientResolve: self.identity.resolve.rawValue, sender: sender?.description ?? "", recipient: "",
                authenticatedUser: self.machine.authenticatedUser ?? "")
            self.server.aliasClient(for: eventLoop).request(check.frame(forSender: true)).assumeIsolated().whenComplete { result in
                self.resume {
                    var verdict: SMTPServerStateMachine.RecipientVerdict = .reject(
                        SMTPReply(451, EnhancedStatusCode(4, 3, 0), "<\(sender?.description ?? "")>... Temporary lookup failure"))
                    if case .success(let frame) = result, let answer = try? AliasProtocol.RecipientVerdict(frame: frame) {
                        switch answer {
                        case .accept: verdict = .accept
                        case .discard: verdict = .discard
                        case .reject(let reply): verdict = .reject(reply)
                        }
                    }
                    if case .reject(let reply) = verdict {
                        self.logger.info("NOQUEUE: reject: MAIL from \(self.identity.logName): \(reply); from=<\(sender?.description ?? "")> proto=ESMTP")
                    }
                    let action = self.machine.senderVerified(verdict)
                    self.countCommand("mail", action)
                    self.perform(action)
                }
            }
        }
    }

    func lookupFailure(_ recipient: MailAddress) -> SMTPServerStateMachine.RecipientVerdict {
        .reject(SMTPReply(451, EnhancedStatusCode(4, 3, 0), "<\(recipient)>... Temporary lookup failure"))
    }

    func open(_ envelope: SMTPServerStateMachine.Envelope) {
        let verb = machine.hasOpenMessage ? "bdat" : "data"
        if envelope.recipients.isEmpty {
            // Every recipient was discarded: read the data, queue nothing.
            count(verb, ok: true)
            framer = DataFramer(policy: server.bareLineEndingPolicy)
            decoder = ChunkDecoder()
            dataOutput.removeAll(keepingCapacity: true)
            perform(machine.dataStarted())
            return
        }
        waiting = true
        let recipients = envelope.recipients.map { $0.qualified(with: server.origin).description }
        // RFC 3848 (ESMTPS over TLS) and RFC 6531 section 3.7.4 (UTF8SMTP).
        // RFC 3848: S for TLS, A for an authenticated client.
        // (HELO sessions are plain SMTP: RFC 3848 names only ESMTP's.)
        let tls = (machine.tlsActive ? "S" : "") + (machine.authenticatedUser != nil ? "A" : "")
        let protocolName = envelope.smtpUTF8 ? "UTF8SMTP" + tls : envelope.esmtp ? "ESMTP" + tls : "SMTP"
        var begin = CleanupProtocol.Begin(
            origin: .smtp, sender: senderText(envelope), recipients: recipients,
            clientName: identity.resolve == .ok ? identity.name : "unknown", clientAddress: identity.address,
            heloName: envelope.heloName,
            protocolName: protocolName, bodyType: envelope.bodyType?.rawValue ?? "")
        begin.ret = envelope.ret?.rawValue ?? ""
        begin.envid = envelope.envelopeID ?? ""
        begin.recipientDSN = envelope.recipientDSN
        begin.smtpUTF8 = envelope.smtpUTF8
        let beginFrame = begin.frame
        if cleanup == nil {
            cleanup = LazyIPCClient(path: server.cleanupPath, eventLoop: context.eventLoop)
        }
        let connection = cleanup!.connection()
        connection.flatMap { $0.request(beginFrame) }
            .and(connection)
            .assumeIsolated()
            .whenComplete { result in
                self.resume {
                    let reply: CleanupProtocol.Reply?
                    switch result {
                    case .success(let (frame, client)):
                        reply = try? CleanupProtocol.Reply(frame: frame)
                        self.transactionClient = client
                    case .failure(let error):
                        self.logger.warning("cleanup unavailable: \(error)")
                        reply = nil
                    }
                    switch reply {
                    case .ok(let id):
                        self.queueID = id
                        if let user = self.machine.authenticatedUser {
                            self.logger.info("\(id): client=\(self.identity.logName), sasl_username=\(user)")
                        } else {
                            self.logger.info("\(id): client=\(self.identity.logName)")
                        }
                        self.framer = DataFramer(policy: self.server.bareLineEndingPolicy)
                        self.decoder = ChunkDecoder()
                        self.dataOutput.removeAll(keepingCapacity: true)
                        let date = WallClock.localTime(WallClock.seconds()).rfc5322
                        let received = ReceivedHeader.text(
                            heloName: envelope.heloName,
                            clientName: self.identity.name.hasPrefix("[") || self.identity.resolve != .ok ? "unknown" : self.identity.name,
                            clientAddress: self.identity.address, hostname: self.server.hostname,
                            protocolName: protocolName, queueID: id, recipients: recipients, date: date,
                            tls: self.tlsVersion)
                        self.dataOutput.append(contentsOf: Array(received.utf8))
                        self.count(verb, ok: true)
                        self.perform(self.machine.dataStarted())
                    case .refused(let smtp):
                        self.count(verb, ok: false)
                        self.perform(self.machine.dataStartFailed(smtp))
                    case nil:
                        self.count(verb, ok: false)
                        self.perform(self.machine.dataStartFailed(
                            SMTPReply(451, EnhancedStatusCode(4, 3, 0), "Error: queue file write error")))
                    }
                }
            }
    }

    func flushContent() {
        guard let client = transactionClient, queueID != nil, !dataOutput.isEmpty else {
            // No queue file (every recipient discarded): nothing to keep.
            if queueID == nil { dataOutput.removeAll(keepingCapacity: true) }
            return
        }
        var start = 0
        while start < dataOutput.count {
            let end = min(dataOutput.count, start + IPCFrame.maximumChunk)
            let size = end - start
            contentInFlight += size
            client.send(CleanupProtocol.content(Array(dataOutput[start..<end]))).assumeIsolated().whenComplete { _ in
                // Written to cleanup's socket, or failed (the commit will
                // tell): either way no longer held here.
                self.contentInFlight -= size
                self.contentTaken()
            }
            start = end
        }
        dataOutput.removeAll(keepingCapacity: true)
    }

    /// Cleanup took content: a throttled session goes on once it is below
    /// the low-water mark.
    func contentTaken() {
        guard contentThrottled, contentInFlight <= Self.contentLowWater else { return }
        contentThrottled = false
        guard context.channel.isActive else { return }
        process()
    }

    func commit() {
        stopDataDeadline()
        if machine.currentEnvelope?.recipients.isEmpty == true {
            dataOutput.removeAll()
            logger.info("NOQUEUE: discard: DATA from \(identity.logName): message discarded by the access map")
            perform(machine.commitFinished(.discarded))
            return
        }
        guard let client = transactionClient, let id = queueID else {
            perform(machine.commitFinished(.failed(SMTPReply(451, EnhancedStatusCode(4, 3, 0), "Error: queue file write error"))))
            return
        }
        waiting = true
        client.request(IPCFrame(.cleanupCommit))
            .assumeIsolated()
            .whenComplete { result in
                self.queueID = nil
                self.transactionClient = nil
                self.resume {
                    switch result {
                    case .success(let frame):
                        switch try? CleanupProtocol.Reply(frame: frame) {
                        case .ok(let committed):
                            self.perform(self.machine.commitFinished(.queued(committed)))
                        case .refused(let reply):
                            self.logger.info("\(id): reject: DATA from \(self.identity.logName): \(reply)")
                            self.perform(self.machine.commitFinished(.failed(reply)))
                        case nil:
                            self.perform(self.machine.commitFinished(.failed(
                                SMTPReply(451, EnhancedStatusCode(4, 3, 0), "Error: queue file write error"))))
                        }
                    case .failure(let error):
                        // No answer from cleanup: the message may or may not
                        // be queued. 451 makes the client retry; a duplicate
                        // is possible, a loss is not.
                        self.logger.warning("\(id): cleanup commit failed: \(error)")
                        self.perform(self.machine.commitFinished(.failed(
                            SMTPReply(451, EnhancedStatusCode(4, 3, 0), "Error: queue file write error"))))
                    }
                }
            }
    }

    /// The message ended (committed or discarded): its time limit with it.
    func stopDataDeadline() {
        dataDeadline?.cancel()
        dataDeadline = nil
    }

    func abortOpenTransaction() {
        stopDataDeadline()
        guard queueID != nil, let client = transactionClient else { return }
        queueID = nil
        transactionClient = nil
        dataOutput.removeAll()
        _ = client.send(IPCFrame(.cleanupAbort))
    }
}

extension SMTPServerStateMachine.Action {
    /// The session ends for improper pipelining (503 5.5.0 and close),
    /// whether or not an open message goes with it.
    var refusesImproperPipelining: Bool {
        switch self {
        case .send(let replies, true), .abortMessage(let replies, true):
            return replies.first?.enhanced == EnhancedStatusCode(5, 5, 0)
        default:
            return false
        }
    }

    /// A 334 challenge: the AUTH exchange goes on, nothing to count yet.
    var isContinuation: Bool {
        if case .send(let replies, _) = self, replies.first?.code == 334 { return true }
        return false
    }
}
