#if canImport(Glibc)
import Glibc
#endif
import AliasService
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import MailCore
import MapStore
import SMTPProtocol
import SendmailRules

/// `sendmail -bs`: an SMTP session on standard input and output, through the
/// same state machine as smtpd, with smtpd's settings (`message_size_limit`,
/// `smtpd_recipient_limit`, `smtpd_hard_error_limit`, `smtpd_timeout`,
/// `smtpd_forbid_bare_newline`, `smtpd_delay_checks`). Senders and
/// recipients are judged by the same code aliasd uses for smtpd
/// (RecipientDecisions: the access map, virtusertable and `virtuser_domains`,
/// mailertable, aliases, unknown local users), with the maps read here, as
/// the caller. The client is this host, as sendmail has it for -bs (an empty
/// client address); root may relay through it, anyone else only to what the
/// recipient's domain allows (local and virtual domains, relay domains,
/// `To:` RELAY). Accepted messages go into the queue like any other local
/// submission (hikyaku-drop, pickup).
enum SMTPOnStandardInput {
    /// The client of a -bs session: locally originated mail has no client
    /// address in sendmail (`${client_addr}` is empty).
    static let client = (address: "", name: "localhost", resolve: "OK")

    static func run(_ options: SendmailOptions, configuration: Configuration, configPath: String?, io: CommandIO) -> Int32 {
        let hostname = configuration.string("myhostname")
        var settings = SMTPServerStateMachine.Settings(
            hostname: hostname, greeting: configuration.string("smtpd_banner"),
            messageSizeLimit: configuration.size("message_size_limit"),
            recipientLimit: max(1, configuration.integer("smtpd_recipient_limit")),
            hardErrorLimit: max(1, configuration.integer("smtpd_hard_error_limit")),
            vrfyEnabled: !configuration.boolean("disable_vrfy_command"),
            checksSender: !configuration.boolean("smtpd_delay_checks"))
        settings.strictEnvelopes = configuration.boolean("strict_rfc821_envelopes")
        var machine = SMTPServerStateMachine(settings: settings)
        let policyName = configuration.string("smtpd_forbid_bare_newline")
        let bareLineEndings = DataFramer.BareLineEndingPolicy(rawValue: policyName) ?? .reject
        if DataFramer.BareLineEndingPolicy(rawValue: policyName) == nil {
            io.error("sendmail: warning: smtpd_forbid_bare_newline = \(policyName): unknown value; using reject")
        }
        let timeoutMilliseconds = Int32(clamping: max(1, configuration.seconds("smtpd_timeout")) * 1000)
        let decisions = RecipientDecisions(
            tables: MapLoader.routingTables(configuration) { io.error("sendmail: warning: \($0)") },
            aliases: AliasLoading.load(configuration) { io.error("sendmail: warning: \($0)") },
            delayChecks: configuration.boolean("smtpd_delay_checks"),
            clientMayRelay: getuid() == 0,
            userExists: { PasswdEntry.lookup(name: $0) != nil })
        let origin = configuration.string("myorigin")
        let limits = SubmissionLimits(sizeLimit: configuration.size("message_size_limit"))

        var framer = DataFramer(policy: bareLineEndings)
        var decoder = ChunkDecoder()
        /// A BDAT chunk being read: octets still to come, whether it is the
        /// last, and for a refused one the replies to give once it is read.
        var bdat: (left: Int, last: Bool, refused: (replies: [SMTPReply], close: Bool)?)? = nil
        var content: [UInt8] = []
        var pending: [UInt8] = []
        var status = SendmailCommand.exOK

        func send(_ replies: [SMTPReply]) {
            for reply in replies { io.write(Array(reply.wireText().utf8)) }
        }

        func verdict(_ answer: AliasProtocol.RecipientVerdict) -> SMTPServerStateMachine.RecipientVerdict {
            switch answer {
            case .accept: return .accept
            case .discard: return .discard
            case .reject(let reply): return .reject(reply)
            }
        }

        func check(sender: String, recipient: String) -> AliasProtocol.RecipientCheck {
            AliasProtocol.RecipientCheck(clientAddress: client.address, clientName: client.name,
                                         clientResolve: client.resolve, sender: sender, recipient: recipient)
        }

        /// Carries out an action; false when the session is over.
        func perform(_ first: SMTPServerStateMachine.Action) -> Bool {
            var action = first
            while true {
                switch action {
                case .send(let replies, let close):
                    send(replies)
                    return !close
                case .verifyRecipient(let recipient):
                    let qualified = recipient.qualified(with: origin).description
                    let sender = machine.currentEnvelope?.sender?.description ?? ""
                    action = machine.recipientVerified(verdict(decisions.check(check(sender: sender, recipient: qualified)).0))
                case .verifySender(let sender):
                    action = machine.senderVerified(verdict(decisions.checkSender(check(sender: sender?.description ?? "",
                                                                                         recipient: "")).0))
                case .openMessage:
                    framer = DataFramer(policy: bareLineEndings)
                    decoder = ChunkDecoder()
                    content.removeAll()
                    action = machine.dataStarted()
                case .receiveChunk(let size, let last):
                    guard size == 0 else {
                        bdat = (size, last, nil)
                        return true
                    }
                    if last { decoder.finish(into: &content) }
                    action = machine.chunkReceived(totalSize: decoder.contentSize)
                case .discardChunk(let size, let replies, let abort, let close):
                    if abort { content.removeAll() }
                    guard size == 0 else {
                        bdat = (size, false, (replies, close))
                        return true
                    }
                    action = .send(replies, close: close)
                case .commitMessage(let envelope, _):
                    // In step with the recipients' DSN requests; cleanup
                    // drops a recipient given twice.
                    let recipients = envelope.recipients.map { $0.qualified(with: origin).description }
                    if recipients.isEmpty {
                        // Every recipient was discarded by the access map.
                        action = machine.commitFinished(.discarded)
                        continue
                    }
                    if let refusal = limits.check(content) {
                        io.error("sendmail: \(refusal)")
                        action = machine.commitFinished(.failed(refusal.reply))
                        continue
                    }
                    let file = MaildropFile(
                        requestedSender: envelope.sender.map { $0.description } ?? "",
                        recipients: recipients,
                        bodyType: envelope.bodyType?.rawValue, ret: envelope.ret?.rawValue, envid: envelope.envelopeID,
                        recipientDSN: envelope.recipientDSN, ignoredOptions: options.ignored,
                        smtpProtocol: envelope.esmtp ? "ESMTP" : "SMTP", content: content)
                    switch Submit.drop(file, configuration: configuration, configPath: configPath) {
                    case .success:
                        action = machine.commitFinished(.submitted)
                    case .failure(let failure):
                        io.error("sendmail: cannot queue the message: \(failure)")
                        status = failure.exitStatus
                        action = machine.commitFinished(.failed(SMTPReply(451, EnhancedStatusCode(4, 3, 0),
                                                                          "Error: queue file write error")))
                    }
                case .abortMessage(let replies, let close):
                    send(replies)
                    return !close
                case .startTLS, .authenticate:
                    // Never offered on standard input (no TLS, no AUTH).
                    send([SMTPReply(502, EnhancedStatusCode(5, 5, 1), "Error: command not implemented")])
                    return true
                }
            }
        }

        guard perform(machine.greeting()) else { return status }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            // smtpd_timeout, as smtpd: the time without input.
            var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, timeoutMilliseconds)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 {
                _ = perform(machine.timedOut())
                return status
            }
            let n = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return status }
            pending += chunk[0..<n]
            while !pending.isEmpty {
                if var current = bdat {
                    let n = min(current.left, pending.count)
                    if current.refused == nil { decoder.feed(Array(pending[..<n]), into: &content) }
                    pending.removeFirst(n)
                    current.left -= n
                    bdat = current
                    guard current.left == 0 else { continue }
                    bdat = nil
                    if let refused = current.refused {
                        guard perform(.send(refused.replies, close: refused.close)) else { return status }
                        continue
                    }
                    if current.last { decoder.finish(into: &content) }
                    guard perform(machine.chunkReceived(totalSize: decoder.contentSize)) else { return status }
                    continue
                }
                if machine.isReceivingData {
                    let event = framer.feed(pending, into: &content)
                    switch event {
                    case .needMore:
                        pending.removeAll()
                    case .end(let consumed):
                        pending.removeFirst(consumed)
                        guard perform(machine.dataEnded(.complete(size: framer.contentSize))) else { return status }
                    case .bareLineEnding(let bareLF):
                        pending.removeAll()
                        _ = perform(machine.dataEnded(.bareLineEnding(bareLF: bareLF)))
                        return status
                    }
                    continue
                }
                guard let newline = pending.firstIndex(of: 10) else {
                    if pending.count > 2048 {
                        pending.removeAll()
                        guard perform(machine.lineTooLong()) else { return status }
                    }
                    break
                }
                var line = Array(pending[..<newline])
                pending.removeFirst(newline + 1)
                if line.last == 13 { line.removeLast() }
                guard perform(machine.receive(line: line)) else { return status }
            }
        }
    }
}
