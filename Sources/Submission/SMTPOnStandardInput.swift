#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import MailCore
import MapStore
import SMTPProtocol
import SendmailRules

/// `sendmail -bs`: an SMTP session on standard input and output, through the
/// same state machine as smtpd. Accepted messages go into the queue like any
/// other local submission (hikyaku-drop, pickup). Only root may relay; an
/// ordinary user may send to local domains only.
enum SMTPOnStandardInput {
    static func run(_ options: SendmailOptions, configuration: Configuration, configPath: String?, io: CommandIO) -> Int32 {
        let hostname = configuration.string("myhostname")
        var machine = SMTPServerStateMachine(settings: SMTPServerStateMachine.Settings(
            hostname: hostname, greeting: configuration.string("smtpd_banner"),
            messageSizeLimit: configuration.size("message_size_limit"),
            recipientLimit: max(1, configuration.integer("smtpd_recipient_limit")),
            hardErrorLimit: max(1, configuration.integer("smtpd_hard_error_limit")),
            vrfyEnabled: !configuration.boolean("disable_vrfy_command")))
        var local = RoutingTables.defaultLocalNames(hostname: hostname)
        local.formUnion(MapLoader.loadClass(path: configuration.string("local_host_names_file")).keys)
        let tables = RoutingTables(localDomains: local)
        let mayRelay = getuid() == 0
        let origin = configuration.string("myorigin")

        var framer = DataFramer()
        var content: [UInt8] = []
        var pending: [UInt8] = []
        var status = SendmailCommand.exOK

        func send(_ replies: [SMTPReply]) {
            for reply in replies { io.write(Array(reply.wireText().utf8)) }
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
                    let qualified = recipient.qualified(with: origin)
                    let domain = qualified.domain ?? origin
                    if mayRelay || tables.isLocal(domain) {
                        action = machine.recipientVerified(.accept)
                    } else {
                        action = machine.recipientVerified(.reject(SMTPReply(550, EnhancedStatusCode(5, 7, 1),
                                                                             "<\(qualified)>... Relaying denied")))
                    }
                case .verifySender:
                    action = machine.senderVerified(.accept)
                case .openMessage:
                    framer = DataFramer()
                    content.removeAll()
                    action = machine.dataStarted()
                case .commitMessage(let envelope, _):
                    let file = MaildropFile(
                        requestedSender: envelope.sender.map { $0.description } ?? "",
                        recipients: envelope.recipients.map { $0.qualified(with: origin).description },
                        bodyType: envelope.bodyType?.rawValue, ret: envelope.ret?.rawValue, envid: envelope.envelopeID,
                        recipientDSN: envelope.recipientDSN, ignoredOptions: options.ignored, content: content)
                    switch Submit.drop(file, configuration: configuration, configPath: configPath) {
                    case .success:
                        action = machine.commitFinished(.submitted)
                    case .failure(let reason):
                        io.error("sendmail: cannot queue the message: \(reason)")
                        status = SendmailCommand.exTempFail
                        action = machine.commitFinished(.failed(SMTPReply(451, EnhancedStatusCode(4, 3, 0),
                                                                          "Error: queue file write error")))
                    }
                case .abortMessage(let replies, let close):
                    send(replies)
                    return !close
                }
            }
        }

        guard perform(machine.greeting()) else { return status }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return status }
            pending += chunk[0..<n]
            while !pending.isEmpty {
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
