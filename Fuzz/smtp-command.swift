// Fuzz target smtp-command: SMTPCommand.parse on every line of the input,
// and a whole server session through SMTPServerStateMachine, driven the
// way SMTPSessionHandler drives it.
//
// Input layout:
//   byte 0     settings: 1 TLS available, 2 TLS required, 4 AUTH enabled,
//              8 AUTH required, 16 sender checked at MAIL, 32 VRFY enabled,
//              64 the session begins in TLS, 128 bare line endings normalized
//   byte 1     limits: recipients (bits 0-1), hard errors (2-3), message
//              size (4-5), AUTH failures (6); bit 7 refuses improper
//              pipelining (a line is pipelined when input follows it)
//   bytes 2-5  the harness's choices (verdicts, commit results), 2 bits each
//   the rest   what the client sends: command lines ending in LF or CRLF,
//              the message after 354, up to CRLF.CRLF, and BDAT chunks
//
// Precondition failures inside SMTPServerStateMachine would be the
// harness's fault: it answers every action before it feeds more input.

import Glibc
import MailCore
import SMTPProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSMTPCommand(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    for line in commandLines(input) {
        checkParse(line)
        checkSASL(line)
    }
    var session = Session(input)
    session.run()
    return 0
}

/// The input split at LF, each line without its LF and a CR before it.
func commandLines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
    bytes.split(separator: 10, omittingEmptySubsequences: false).map { $0.last == 13 ? $0.dropLast() : $0 }
}

// MARK: The parser alone

func parse(_ line: some Collection<UInt8>) -> Result<SMTPCommand, SMTPCommandError> {
    do {
        return .success(try SMTPCommand.parse(line))
    } catch {
        return .failure(error)
    }
}

/// A parsed command written out again as a client would write it parses to
/// the same command.
func checkParse(_ line: ArraySlice<UInt8>) {
    guard case .success(let command) = parse(line) else { return }
    require(!line.contains(0), "a line with NUL parsed: \(escaped(line))")
    let text: String
    switch command {
    case .helo(let name), .ehlo(let name):
        require(!name.isEmpty && !name.contains(" ") && !name.contains("\t"), "HELO name \(escaped(name))")
        text = (command == .helo(name) ? "HELO " : "EHLO ") + name
    case .mail(let sender, let parameters):
        if let sender { checkAddress(sender) }
        text = "MAIL FROM:<\(sender?.description ?? "")>" + parameterText(parameters)
    case .rcpt(let recipient, let parameters):
        checkAddress(recipient)
        text = "RCPT TO:<\(recipient)>" + parameterText(parameters)
    case .data: text = "DATA"
    case .rset: text = "RSET"
    case .noop: text = "NOOP"
    case .quit: text = "QUIT"
    case .startTLS: text = "STARTTLS"
    case .auth(let mechanism, let initial):
        require(!mechanism.isEmpty && !mechanism.contains(" "), "AUTH mechanism \(escaped(mechanism))")
        text = "AUTH " + mechanism + (initial.map { " " + $0 } ?? "")
    case .help(let topic): text = "HELP" + (topic.map { " " + $0 } ?? "")
    case .vrfy(let what): text = "VRFY " + what
    case .bdat(let size, let last):
        require(size >= 0, "BDAT \(size)")
        text = "BDAT \(size)" + (last ? " LAST" : "")
    }
    let again = parse(Array(text.utf8))
    guard case .success(let reparsed) = again else {
        // A path within 256 octets bare (`MAIL FROM:a@b`) may be longer
        // than that with its brackets: the written-out form is refused as
        // too long, and only that.
        if case .failure(let error) = again, error == .badSender(.tooLong) || error == .badRecipient(.tooLong),
           text.utf8.count > 256 {
            return
        }
        fatalError("\(escaped(line)) parsed to \(command), but \(escaped(text)) gives \(again)")
    }
    require(reparsed == command, "\(escaped(line)) parsed to \(command), \(escaped(text)) to \(reparsed)")
}

func parameterText(_ parameters: [ESMTPParameter]) -> String {
    parameters.map { parameter in
        require(!parameter.keyword.isEmpty && parameter.keyword == parameter.keyword.uppercased(),
                "parameter keyword \(escaped(parameter.keyword))")
        if let value = parameter.value {
            require(!value.isEmpty && value.utf8.allSatisfy { $0 >= 33 && $0 <= 126 }, "parameter value \(escaped(value))")
            return " \(parameter.keyword)=\(value)"
        }
        return " \(parameter.keyword)"
    }.joined()
}

/// An address from a command: no control characters, nothing that ends the
/// angle brackets, within RFC 5321's limits.
func checkAddress(_ address: MailAddress) {
    let text = address.description
    require(!address.localPart.isEmpty && address.localPart.utf8.count <= MailAddress.maximumLocalPartLength,
            "local part \(escaped(address.localPart))")
    require(address.domain.map { !$0.isEmpty && $0.utf8.count <= MailAddress.maximumDomainLength } ?? true,
            "domain of \(escaped(text))")
    require(!text.utf8.contains { $0 < 0x20 || $0 == 0x7f }, "control character in \(escaped(text))")
}

/// The SASL pieces a line reaches: base64, PLAIN's message, Dovecot's escaping.
func checkSASL(_ line: ArraySlice<UInt8>) {
    let text = String(decoding: line, as: UTF8.self)
    if let decoded = Base64.decode(text) {
        require(Base64.decode(Base64.encode(decoded)) == decoded, "base64 \(escaped(text))")
        if let credentials = SASLCredentials(plain: decoded) {
            require(SASLCredentials(plain: credentials.plain) == credentials, "PLAIN message \(escaped(decoded))")
        }
    }
    let escapedText = DovecotAuth.escape(text)
    require(!escapedText.utf8.contains(where: { $0 == 9 || $0 == 10 || $0 == 13 }), "Dovecot escape of \(escaped(text))")
    require(DovecotAuth.unescape(escapedText) == text, "Dovecot escape round trip of \(escaped(text))")
    _ = DovecotAuth.parse(text)
}

// MARK: A whole session

struct Session {
    typealias Machine = SMTPServerStateMachine

    /// SMTPSessionHandler.commandLineLimit.
    static let commandLineLimit = 2048

    var machine: Machine
    let policy: DataFramer.BareLineEndingPolicy
    var choices: Choices
    let stream: [UInt8]
    var position = 0
    var framer: DataFramer
    var decoder = ChunkDecoder()
    var content: [UInt8] = []
    /// The input ended inside a BDAT chunk: the client went away.
    var dropped = false
    /// The connection is gone: after a reply with close, or a failed handshake.
    var closed = false
    /// The last reply was 334: the next line belongs to AUTH.
    var inAuthExchange = false
    var commits: UInt64 = 0

    init(_ input: [UInt8]) {
        let flags = input.first ?? 0
        let limits = input.count > 1 ? input[1] : 0
        var settings = Machine.Settings(hostname: "mx.example.jp",
                                        messageSizeLimit: [0, 16, 1000, 10_240_000][Int(limits >> 4 & 3)],
                                        recipientLimit: [1, 2, 5, 1000][Int(limits & 3)],
                                        hardErrorLimit: [1, 3, 20, 100][Int(limits >> 2 & 3)],
                                        vrfyEnabled: flags & 32 != 0, checksSender: flags & 16 != 0)
        settings.tlsAvailable = flags & 1 != 0
        settings.tlsRequired = flags & 2 != 0
        settings.authEnabled = flags & 4 != 0
        settings.authRequired = flags & 8 != 0
        settings.authFailureLimit = limits & 64 != 0 ? 1 : 3
        settings.rejectUnauthPipelining = limits & 128 != 0
        machine = Machine(settings: settings)
        if flags & 64 != 0 { machine.beginsInTLS() }
        policy = flags & 128 != 0 ? .normalize : .reject
        framer = DataFramer(policy: policy)
        choices = Choices(input.dropFirst(2).prefix(4))
        stream = Array(input.dropFirst(6))
    }

    var settings: Machine.Settings { machine.settings }

    mutating func run() {
        let greeting = resolve(machine.greeting())
        require(greeting.count == 1 && greeting[0].code == 220, "greeting \(greeting)")
        while !closed {
            if machine.isReceivingData {
                guard position < stream.count else { break }
                let remaining = stream.count - position
                let event = stream[position...].withUnsafeBytes { framer.feed($0, into: &content) }
                require(framer.contentSize == content.count, "content size \(framer.contentSize), \(content.count) bytes")
                switch event {
                case .needMore:
                    position = stream.count
                case .end(let consumed):
                    require(consumed > 0 && consumed <= remaining, "consumed \(consumed) of \(remaining)")
                    position += consumed
                    let replies = resolve(machine.dataEnded(.complete(size: framer.contentSize)))
                    expectOneReply(replies, to: "end of data")
                case .bareLineEnding(let bareLF):
                    require(policy == .reject, "bare line ending reported under normalize")
                    position = stream.count
                    let replies = resolve(machine.dataEnded(.bareLineEnding(bareLF: bareLF)))
                    expectOneReply(replies, to: "bare line ending")
                    require(closed, "the session goes on after a bare line ending")
                }
                continue
            }
            guard let newline = stream[position...].firstIndex(of: 10) else { break }
            var line = stream[position..<newline]
            position = newline + 1
            if line.last == 13 { line = line.dropLast() }
            if line.count > Self.commandLineLimit {
                // It also ends an AUTH exchange.
                let replies = resolve(machine.lineTooLong())
                expectOneReply(replies, to: "a line too long")
                require(!machine.isAuthenticating, "still in an AUTH exchange after a line too long")
                continue
            }
            command(line)
        }
        if !closed {
            let replies = resolve(machine.timedOut())
            require(replies.map(\.code) == [421] && closed && machine.isClosed, "timeout gave \(replies)")
        }
    }

    /// One command line (or a line of an AUTH exchange).
    mutating func command(_ line: ArraySlice<UInt8>) {
        let authLine = inAuthExchange
        let parsed = parse(line)
        let envelopeBefore = machine.currentEnvelope
        let first = machine.receive(line: line, pipelined: position < stream.count)
        var isBDAT = false
        var endsOpenMessage = false
        if !authLine, case .success(let command) = parsed {
            switch command {
            case .bdat: isBDAT = true
            case .rset, .helo, .ehlo, .quit: endsOpenMessage = true
            default: break
            }
        }

        // The action fits the command.
        switch first {
        case .verifyRecipient(let recipient):
            guard !authLine, case .success(.rcpt(let parsedRecipient, _)) = parsed, parsedRecipient == recipient else {
                fatalError("verifyRecipient(\(recipient)) for \(escaped(line))")
            }
            require(envelopeBefore != nil, "RCPT verified outside a transaction")
        case .verifySender(let sender):
            guard !authLine, case .success(.mail(let parsedSender, _)) = parsed, parsedSender == sender else {
                fatalError("verifySender for \(escaped(line))")
            }
        case .openMessage:
            guard !authLine, case .success(.data) = parsed else {
                guard isBDAT else { fatalError("openMessage for \(escaped(line))") }
                break
            }
        case .receiveChunk, .discardChunk:
            require(isBDAT, "\(first) for \(escaped(line))")
        case .startTLS:
            guard !authLine, case .success(.startTLS) = parsed else { fatalError("startTLS for \(escaped(line))") }
        case .authenticate:
            guard authLine || { if case .success(.auth) = parsed { return true } else { return false } }() else {
                fatalError("authenticate for \(escaped(line))")
            }
        case .commitMessage:
            fatalError("\(first) for a command line")
        case .abortMessage(_, let close):
            // RSET, HELO, EHLO and QUIT end a BDAT message; so does a
            // session that is closed.
            require(endsOpenMessage || close, "\(first) for \(escaped(line))")
        case .send(let replies, _):
            if !authLine, case .failure = parsed, !replies.isEmpty {
                require(replies[0].code >= 500, "\(escaped(line)) does not parse but got \(replies)")
            }
            if !authLine, case .success(let command) = parsed, let reply = replies.first {
                // A command is not taken for a line of an AUTH exchange.
                let isAUTH: Bool
                if case .auth = command { isAUTH = true } else { isAUTH = false }
                require(isAUTH || (reply.code != 334 && reply.lines != ["Cannot decode response"]),
                        "\(escaped(line)) read as an AUTH response: \(replies)")
            }
        }

        let replies = resolve(first)
        if case .send([], close: true) = first {
            fatalError("a command after the session was closed")
        }
        if dropped { return }
        expectOneReply(replies, to: escaped(line))

        if envelopeBefore == nil, let envelope = machine.currentEnvelope {
            // A transaction started: only as the settings allow.
            require(machine.tlsActive || !settings.tlsRequired, "MAIL accepted without TLS")
            require(machine.authenticatedUser != nil || !settings.authRequired, "MAIL accepted without AUTH")
            require(envelope.sender.map { $0.isASCII || envelope.smtpUTF8 } ?? true, "UTF-8 sender without SMTPUTF8")
            require(envelope.recipients.isEmpty, "a new transaction with recipients")
        }
        if let envelope = machine.currentEnvelope {
            checkEnvelope(envelope)
        }
    }

    /// Carries out actions until the machine sends replies; returns them.
    mutating func resolve(_ first: Machine.Action) -> [SMTPReply] {
        var action = first
        var replies: [SMTPReply] = []
        while true {
            switch action {
            case .send(let sent, let close):
                check(sent)
                replies += sent
                require(close == machine.isClosed, "close \(close) but the machine's closed is \(machine.isClosed)")
                require(close || !sent.isEmpty, "nothing to send and the session goes on")
                if close { closed = true }
                inAuthExchange = !close && sent.last?.code == 334
                return replies

            case .abortMessage(let sent, let close):
                check(sent)
                require(!sent.isEmpty, "abort with nothing to say")
                require(close == machine.isClosed, "abort close \(close), machine closed \(machine.isClosed)")
                require(machine.currentEnvelope == nil, "an envelope after abort")
                if close { closed = true }
                inAuthExchange = false
                return replies + sent

            case .verifyRecipient(let recipient):
                checkAddress(recipient)
                let envelope = machine.currentEnvelope!
                require(recipient.isASCII || envelope.smtpUTF8, "UTF-8 recipient without SMTPUTF8")
                require(envelope.recipients.count < settings.recipientLimit, "recipient limit passed")
                let verdict = verdict(for: recipient)
                action = machine.recipientVerified(verdict)
                if case .send(let sent, _) = action, sent.first?.code == 250 {
                    let after = machine.currentEnvelope!
                    if verdict == .accept && !envelope.discardAll {
                        require(after.recipients == envelope.recipients + [recipient], "accepted recipient not added")
                    } else {
                        require(after.recipients == envelope.recipients, "a recipient added for \(verdict)")
                    }
                }

            case .verifySender(let sender):
                if let sender { checkAddress(sender) }
                require(machine.currentEnvelope == nil, "sender check inside a transaction")
                action = machine.senderVerified(verdict(for: sender))

            case .openMessage(let envelope):
                checkEnvelope(envelope)
                require(!envelope.recipients.isEmpty || envelope.discardedRecipients > 0, "DATA without recipients")
                if choices.pick() == 3 {
                    action = machine.dataStartFailed(SMTPReply(451, EnhancedStatusCode(4, 3, 0), "Error: queue file write error"))
                    require(machine.currentEnvelope == nil, "an envelope after a failed open")
                } else {
                    framer = DataFramer(policy: policy)
                    decoder = ChunkDecoder()
                    content.removeAll(keepingCapacity: true)
                    action = machine.dataStarted()
                    if case .receiveChunk = action {
                        require(machine.isReceivingChunk, "BDAT's chunk not being read")
                    } else {
                        require(machine.isReceivingData, "not receiving data after 354")
                    }
                }

            case .receiveChunk(let size, let last):
                require(machine.isReceivingChunk && machine.currentEnvelope != nil, "a chunk outside a transaction")
                require(size >= 0, "a chunk of \(size) octets")
                guard stream.count - position >= size else {
                    // The client went away inside the chunk.
                    position = stream.count
                    closed = true
                    dropped = true
                    return replies
                }
                stream[position..<(position + size)].withUnsafeBytes { decoder.feed($0, into: &content) }
                position += size
                if last { decoder.finish(into: &content) }
                require(decoder.contentSize == content.count, "chunk content \(decoder.contentSize), \(content.count) bytes")
                action = machine.chunkReceived(totalSize: decoder.contentSize)

            case .discardChunk(let size, let sent, let abort, let close):
                check(sent)
                require(!sent.isEmpty && sent[0].code >= 400, "a refused chunk answered \(sent)")
                require(close == machine.isClosed, "discard close \(close), machine closed \(machine.isClosed)")
                require(!abort || machine.currentEnvelope == nil, "an envelope after a discarded message")
                guard stream.count - position >= size else {
                    position = stream.count
                    closed = true
                    dropped = true
                    return replies
                }
                position += size
                if close { closed = true }
                inAuthExchange = false
                return replies + sent

            case .commitMessage(let envelope, let size):
                checkEnvelope(envelope)
                require(size == content.count, "commit of \(size) bytes, \(content.count) received")
                require(settings.messageSizeLimit == 0 || size <= settings.messageSizeLimit, "size limit passed")
                commits += 1
                let id = QueueID(seconds: 1_800_000_000, microseconds: Int(commits), inode: commits)
                checkReceived(envelope, id: id)
                switch choices.pick() {
                case 0:
                    action = machine.commitFinished(.queued(id))
                    guard case .send(let sent, close: false) = action, sent.count == 1, sent[0].code == 250,
                          sent[0].lines[0].hasSuffix(id.rawValue) else {
                        fatalError("queued as \(id) gave \(action)")
                    }
                case 1: action = machine.commitFinished(.discarded)
                case 2: action = machine.commitFinished(.submitted)
                default:
                    action = machine.commitFinished(.failed(SMTPReply(451, EnhancedStatusCode(4, 3, 0), "Error: queue file write error")))
                }
                require(machine.currentEnvelope == nil && !machine.isReceivingData, "a transaction after commit")

            case .startTLS(let reply):
                check([reply])
                require(reply.code == 220, "STARTTLS answered \(reply)")
                require(!machine.tlsActive && settings.tlsAvailable, "STARTTLS inside TLS or without a certificate")
                require(machine.currentEnvelope == nil, "STARTTLS inside a transaction")
                replies.append(reply)
                inAuthExchange = false
                if choices.pick() == 3 {
                    // The handshake failed: the connection is dropped.
                    closed = true
                } else {
                    machine.tlsStarted()
                    require(machine.tlsActive && machine.currentEnvelope == nil && machine.authenticatedUser == nil,
                            "state left over from before TLS")
                }
                return replies

            case .authenticate(let credentials, let mechanism):
                require(machine.tlsActive && settings.authEnabled, "credentials taken outside TLS or with AUTH off")
                require(machine.authenticatedUser == nil && machine.currentEnvelope == nil, "AUTH twice or inside a transaction")
                require(mechanism == "PLAIN" || mechanism == "LOGIN", "mechanism \(escaped(mechanism))")
                require(!credentials.user.isEmpty || mechanism == "LOGIN", "PLAIN with an empty user")
                let request = DovecotAuth.request(id: 1, credentials: credentials, clientAddress: "192.0.2.1",
                                                  localAddress: "192.0.2.25", secured: true)
                require(request.utf8.filter { $0 == 10 }.count == 1 && request.hasSuffix("\n"), "Dovecot request \(escaped(request))")
                switch choices.pick() {
                case 0, 1:
                    action = machine.authenticationFinished(.success(credentials.user))
                    require(machine.authenticatedUser == credentials.user, "authenticated as someone else")
                case 2:
                    let failuresBefore = machine.authFailures
                    action = machine.authenticationFinished(.failure(""))
                    require(machine.authFailures == failuresBefore + 1, "a failure not counted")
                    require(machine.authFailures < settings.authFailureLimit || machine.isClosed, "failure limit passed")
                    require(machine.authenticatedUser == nil, "authenticated after a failure")
                default:
                    action = machine.authenticationFinished(.unavailable("connection refused"))
                    require(machine.authenticatedUser == nil, "authenticated while the service was away")
                }
            }
        }
    }

    mutating func verdict(for address: MailAddress?) -> Machine.RecipientVerdict {
        switch choices.pick() {
        case 0, 1: return .accept
        case 2:
            let text = "<\(address?.description ?? "")>"
            return choices.pick() < 2
                ? .reject(SMTPReply(550, EnhancedStatusCode(5, 1, 1), "\(text)... User unknown"))
                : .reject(SMTPReply(450, EnhancedStatusCode(4, 7, 1), "\(text)... Temporary lookup failure"))
        default: return .discard
        }
    }

    /// Every input unit (a command line, a line of AUTH, a message) gets one
    /// reply, and a 421 after it when the session ends. (Call it with the
    /// replies in a variable: in `expectOneReply(resolve(...))` self would be
    /// read before resolve runs.)
    func expectOneReply(_ replies: [SMTPReply], to what: @autoclosure () -> String) {
        let ok = replies.count == 1 || (replies.count == 2 && replies[1].code == 421 && closed)
        require(ok, "\(what()) got \(replies.count) replies: \(replies)")
    }

    func check(_ replies: [SMTPReply]) {
        for reply in replies {
            require((200...599).contains(reply.code), "reply code \(reply.code)")
            require(!reply.lines.isEmpty, "a reply without lines")
            if let enhanced = reply.enhanced {
                require(enhanced.statusClass == reply.code / 100, "\(reply.code) with enhanced code \(enhanced)")
            }
            let wire = Array(reply.wireText().utf8)
            require(wire.count >= 5 && wire.suffix(2) == [13, 10], "reply on the wire: \(escaped(wire))")
            var lineEnds = 0
            for (index, byte) in wire.enumerated() where byte == 13 || byte == 10 {
                if byte == 13 {
                    require(index + 1 < wire.count && wire[index + 1] == 10, "bare CR in \(escaped(wire))")
                    lineEnds += 1
                } else {
                    require(index > 0 && wire[index - 1] == 13, "bare LF in \(escaped(wire))")
                }
            }
            require(lineEnds == reply.lines.count, "\(reply.lines.count) lines sent as \(lineEnds): \(escaped(wire))")
            if reply.code >= 200 && reply.code <= 599, let parsed = SMTPReply(description: reply.description) {
                require(parsed.code == reply.code, "reply \(reply) read back as \(parsed)")
            }
        }
    }

    func checkEnvelope(_ envelope: Machine.Envelope) {
        require(envelope.recipients.count <= settings.recipientLimit, "\(envelope.recipients.count) recipients")
        require(envelope.recipientDSN.count == envelope.recipients.count, "DSN list out of step with recipients")
        require(envelope.recipients.allSatisfy { $0.isASCII } || envelope.smtpUTF8, "UTF-8 recipient without SMTPUTF8")
        if let size = envelope.declaredSize {
            require(size >= 0 && (settings.messageSizeLimit == 0 || size <= settings.messageSizeLimit), "SIZE=\(size) accepted")
        }
        if let envelopeID = envelope.envelopeID {
            require(DSNEnvelopeID.validated(envelopeID) == envelopeID, "ENVID \(escaped(envelopeID))")
        }
        for dsn in envelope.recipientDSN {
            require(dsn.notify.isValid, "NOTIFY \(dsn.notify.rawValue)")
            if let original = dsn.originalRecipient {
                require(original.isValid, "ORCPT \(escaped(original.stored))")
            }
        }
        require(!envelope.discardAll || envelope.recipients.isEmpty, "recipients kept after a DISCARD sender")
    }

    /// The Received: field made from what the client said stays one field.
    func checkReceived(_ envelope: Machine.Envelope, id: QueueID) {
        let text = ReceivedHeader.text(heloName: envelope.heloName, clientName: "unknown", clientAddress: "192.0.2.1",
                                       hostname: settings.hostname, protocolName: "ESMTP", queueID: id,
                                       recipients: envelope.recipients.map(\.description),
                                       date: "Mon, 9 Nov 2026 08:05:03 +0900")
        let bytes = Array(text.utf8)
        require(!bytes.contains(13) && bytes.last == 10, "Received: \(escaped(text))")
        let lines = bytes.split(separator: 10)
        require(lines.first.map { $0.starts(with: Array("Received: ".utf8)) } ?? false, "Received: \(escaped(text))")
        require(lines.dropFirst().allSatisfy { $0.first == 9 }, "a Received: line that is not a continuation: \(escaped(text))")
    }
}
