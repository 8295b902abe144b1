import MailCore

/// The client side of one SMTP session as a pure state machine (RFC 5321,
/// with ESMTP PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN and STARTTLS).
///
/// The machine never does I/O. The caller feeds it the server's replies (and
/// the outcome of a TLS handshake it asked for) and carries out the actions
/// it returns. A session can carry several transactions: each time the
/// machine says `.ready`, the caller may ``begin(_:)`` another one or
/// ``quit()``.
public struct SMTPClientSession: Sendable {
    public enum TLSPolicy: String, Sendable, CaseIterable {
        /// Never STARTTLS.
        case none
        /// STARTTLS when offered; plain text when not, or when it fails.
        case may
        /// Only over TLS: a peer without STARTTLS, or a failed handshake,
        /// defers the mail.
        case encrypt
    }

    public struct Settings: Sendable {
        public var heloName: String
        public var tlsPolicy: TLSPolicy
        /// `host[address]:port`, for the texts that explain a result.
        public var peer: String

        public init(heloName: String, tlsPolicy: TLSPolicy, peer: String) {
            self.heloName = heloName
            self.tlsPolicy = tlsPolicy
            self.peer = peer
        }
    }

    /// What the server's EHLO reply offered.
    public struct Extensions: Equatable, Sendable {
        public var pipelining = false
        /// nil: SIZE not offered; 0: offered without a fixed limit.
        public var size: Int? = nil
        public var eightBitMIME = false
        public var smtpUTF8 = false
        public var dsn = false
        public var startTLS = false

        public init() {}

        /// The keywords of an EHLO reply, every line after the first.
        public init(ehloLines: [String]) {
            for line in ehloLines.dropFirst() {
                let words = line.split(separator: " ")
                guard let keyword = words.first?.uppercased() else { continue }
                switch keyword {
                case "PIPELINING": pipelining = true
                case "SIZE": size = words.count > 1 ? Int(words[1]).map { max(0, $0) } ?? 0 : 0
                case "8BITMIME": eightBitMIME = true
                case "SMTPUTF8": smtpUTF8 = true
                case "DSN": dsn = true
                case "STARTTLS": startTLS = true
                default: break
                }
            }
        }
    }

    public struct Recipient: Equatable, Sendable {
        public var address: String
        /// RFC 3461 NOTIFY: `NEVER`, or some of `SUCCESS,FAILURE,DELAY`.
        public var notify: String?
        /// RFC 3461 ORCPT, decoded: `rfc822;user@example.org`.
        public var originalRecipient: String?

        public init(address: String, notify: String? = nil, originalRecipient: String? = nil) {
            self.address = address
            self.notify = notify
            self.originalRecipient = originalRecipient
        }
    }

    public struct Transaction: Equatable, Sendable {
        public var sender: String
        public var recipients: [Recipient]
        /// The content's size in bytes, as announced with SIZE.
        public var size: Int
        /// The content has 8-bit bytes (or arrived as BODY=8BITMIME).
        public var eightBit: Bool
        /// An address or header needs SMTPUTF8 (RFC 6531).
        public var smtpUTF8: Bool
        public var ret: String?
        public var envid: String?

        public init(sender: String, recipients: [Recipient], size: Int, eightBit: Bool = false, smtpUTF8: Bool = false,
                    ret: String? = nil, envid: String? = nil) {
            self.sender = sender
            self.recipients = recipients
            self.size = size
            self.eightBit = eightBit
            self.smtpUTF8 = smtpUTF8
            self.ret = ret
            self.envid = envid
        }
    }

    /// What became of one recipient: the reply that decided it and the
    /// command it answered (`RCPT TO`, `end of DATA`...). `reply` is a
    /// reply made up by the client when the peer could not take the message
    /// at all (SIZE, SMTPUTF8).
    public struct RecipientResult: Equatable, Sendable {
        public var index: Int
        public var reply: SMTPReply
        public var inReplyTo: String
        /// The server said it; false when the client decided alone.
        public var fromServer: Bool
        /// Made up because the connection broke or timed out (``abandon(reason:)``).
        public var connectionLost = false

        public init(index: Int, reply: SMTPReply, inReplyTo: String, fromServer: Bool = true) {
            self.index = index
            self.reply = reply
            self.inReplyTo = inReplyTo
            self.fromServer = fromServer
        }
    }

    /// Why a session could not take mail at all; the caller tries the next
    /// host (or, for `.tlsFailed` under `may`, the same host in plain text).
    public enum Refusal: Equatable, Sendable {
        case reply(SMTPReply, inReplyTo: String)
        case tlsRequired
        case tlsFailed(String)
        case protocolError(String)
    }

    public enum Action: Equatable, Sendable {
        /// Write these command lines, each followed by CRLF, in one write.
        case send([String])
        /// Put TLS under the connection, then report ``tlsEstablished()``
        /// or ``tlsFailed(_:)``.
        case startTLS
        /// Write the message: CRLF line endings, dot-stuffed, then `.` CRLF;
        /// with `downgrade`, 8-bit MIME parts become quoted-printable first.
        case sendContent(downgrade: Bool)
        /// The session is idle: ``begin(_:)`` a transaction or ``quit()``.
        case ready
        /// The transaction is over; every recipient has its result.
        case finished([RecipientResult])
        /// The session cannot be used: close it.
        case refused(Refusal)
        /// Close the connection.
        case close
    }

    enum Expectation: Equatable, Sendable {
        case greeting, ehlo, helo, startTLS
        case mail
        case rcpt(Int)
        case data
        /// `.` sent after a 354 although no recipient was accepted.
        case emptyData
        case dataDone
        case rset
        case quit
    }

    public let settings: Settings
    public private(set) var extensions = Extensions()
    public private(set) var tlsActive = false
    public private(set) var esmtp = false
    var expected: [Expectation] = []
    var transaction: Transaction? = nil
    var mailReply: SMTPReply? = nil
    var results: [Int: RecipientResult] = [:]
    var accepted: [Int] = []
    var nextRecipient = 0
    var awaitingTLS = false
    public private(set) var transactions = 0

    public init(settings: Settings) {
        self.settings = settings
        expected = [.greeting]
    }

    /// The command the next reply answers, for timeouts and texts.
    public var stage: String {
        guard let first = expected.first else { return awaitingTLS ? "TLS handshake" : "idle" }
        return Self.commandName(first)
    }

    /// Mid-transaction: a lost connection now leaves recipients unresolved.
    public var inTransaction: Bool { transaction != nil }

    /// Whether the message content has gone out (a lost connection after it
    /// may still have delivered the message).
    public private(set) var contentSent = false

    static func commandName(_ e: Expectation) -> String {
        switch e {
        case .greeting: return "initial greeting"
        case .ehlo: return "EHLO"
        case .helo: return "HELO"
        case .startTLS: return "STARTTLS"
        case .mail: return "MAIL FROM"
        case .rcpt: return "RCPT TO"
        case .data: return "DATA"
        case .emptyData, .dataDone: return "end of DATA"
        case .rset: return "RSET"
        case .quit: return "QUIT"
        }
    }

    // MARK: Input

    public mutating func received(_ reply: SMTPReply) -> [Action] {
        guard !expected.isEmpty else {
            return [.refused(.protocolError("unexpected reply from \(settings.peer): \(reply)")), .close]
        }
        let expectation = expected.removeFirst()
        // 421: the server is going away, whatever it was asked.
        if reply.code == 421 && expectation != .quit {
            expected.removeAll()
            if transaction != nil {
                return [.finished(resolveAll(with: reply, inReplyTo: Self.commandName(expectation))), .close]
            }
            return [.refused(.reply(reply, inReplyTo: Self.commandName(expectation))), .close]
        }
        switch expectation {
        case .greeting:
            guard reply.code == 220 else { return [.refused(.reply(reply, inReplyTo: "initial greeting")), .send(["QUIT"]), .close] }
            expected = [.ehlo]
            return [.send(["EHLO \(settings.heloName)"])]
        case .ehlo:
            guard reply.code == 250 else {
                if reply.isPermanent && !tlsActive {
                    expected = [.helo]
                    return [.send(["HELO \(settings.heloName)"])]
                }
                return [.refused(.reply(reply, inReplyTo: "EHLO")), .send(["QUIT"]), .close]
            }
            esmtp = true
            extensions = Extensions(ehloLines: reply.lines)
            if !tlsActive && settings.tlsPolicy != .none && extensions.startTLS {
                expected = [.startTLS]
                return [.send(["STARTTLS"])]
            }
            if !tlsActive && settings.tlsPolicy == .encrypt {
                return [.refused(.tlsRequired), .send(["QUIT"]), .close]
            }
            return [.ready]
        case .helo:
            guard reply.code == 250 else { return [.refused(.reply(reply, inReplyTo: "HELO")), .send(["QUIT"]), .close] }
            if settings.tlsPolicy == .encrypt { return [.refused(.tlsRequired), .send(["QUIT"]), .close] }
            extensions = Extensions()
            return [.ready]
        case .startTLS:
            guard reply.code == 220 else {
                if settings.tlsPolicy == .encrypt {
                    return [.refused(.reply(reply, inReplyTo: "STARTTLS")), .send(["QUIT"]), .close]
                }
                return [.ready]
            }
            awaitingTLS = true
            return [.startTLS]
        case .mail:
            mailReply = reply
            if !pipelining {
                guard reply.code == 250 else { return failTransaction(with: reply, inReplyTo: "MAIL FROM") }
                return sendNextRecipient()
            }
            return []
        case .rcpt(let index):
            if let mailReply, mailReply.code != 250 {
                results[index] = RecipientResult(index: index, reply: mailReply, inReplyTo: "MAIL FROM")
            } else if reply.code == 250 || reply.code == 251 {
                accepted.append(index)
            } else {
                results[index] = RecipientResult(index: index, reply: reply, inReplyTo: "RCPT TO")
            }
            if !pipelining { return sendNextRecipient() }
            return []
        case .data:
            if reply.code == 354 {
                if accepted.isEmpty {
                    expected = [.emptyData]
                    return [.send(["."])]
                }
                expected = [.dataDone]
                contentSent = true
                let downgrade = transaction!.eightBit && !extensions.eightBitMIME
                return [.sendContent(downgrade: downgrade)]
            }
            // The recipients that were accepted share the DATA failure.
            for index in accepted {
                results[index] = RecipientResult(index: index, reply: reply, inReplyTo: "DATA")
            }
            accepted.removeAll()
            return endTransaction(needsReset: true)
        case .emptyData:
            return endTransaction(needsReset: true)
        case .dataDone:
            for index in accepted {
                results[index] = RecipientResult(index: index, reply: reply, inReplyTo: "end of DATA")
            }
            accepted.removeAll()
            return endTransaction(needsReset: false)
        case .rset:
            guard reply.code == 250 else { return [.send(["QUIT"]), .close] }
            return [.ready]
        case .quit:
            return [.close]
        }
    }

    public mutating func tlsEstablished() -> [Action] {
        awaitingTLS = false
        tlsActive = true
        extensions = Extensions()
        expected = [.ehlo]
        return [.send(["EHLO \(settings.heloName)"])]
    }

    public mutating func tlsFailed(_ reason: String) -> [Action] {
        awaitingTLS = false
        return [.refused(.tlsFailed(reason)), .close]
    }

    // MARK: Transactions

    var pipelining: Bool { extensions.pipelining }

    /// Starts a transaction on a ready session.
    public mutating func begin(_ transaction: Transaction) -> [Action] {
        precondition(expected.isEmpty && self.transaction == nil, "begin needs a ready session")
        self.transaction = transaction
        transactions += 1
        results = [:]
        accepted = []
        mailReply = nil
        nextRecipient = 0
        contentSent = false
        if let limit = extensions.size, limit > 0, transaction.size > limit {
            let reply = SMTPReply(552, EnhancedStatusCode(5, 3, 4),
                                  "message size \(transaction.size) exceeds size limit \(limit) of server \(settings.peer)")
            return finishLocally(reply)
        }
        if transaction.smtpUTF8 && !extensions.smtpUTF8 {
            let reply = SMTPReply(553, EnhancedStatusCode(5, 6, 7),
                                  "SMTPUTF8 is required, but was not offered by host \(settings.peer)")
            return finishLocally(reply)
        }
        var mail = "MAIL FROM:<\(transaction.sender)>"
        if extensions.size != nil { mail += " SIZE=\(transaction.size)" }
        if transaction.eightBit && extensions.eightBitMIME { mail += " BODY=8BITMIME" }
        if transaction.smtpUTF8 { mail += " SMTPUTF8" }
        if extensions.dsn {
            if let ret = transaction.ret, !ret.isEmpty { mail += " RET=\(ret.uppercased())" }
            if let envid = transaction.envid, !envid.isEmpty { mail += " ENVID=\(XText.encode(envid))" }
        }
        guard pipelining else {
            expected = [.mail]
            return [.send([mail])]
        }
        var lines = [mail]
        expected = [.mail]
        for index in transaction.recipients.indices {
            lines.append(rcptCommand(index))
            expected.append(.rcpt(index))
        }
        lines.append("DATA")
        expected.append(.data)
        return [.send(lines)]
    }

    func rcptCommand(_ index: Int) -> String {
        let recipient = transaction!.recipients[index]
        var line = "RCPT TO:<\(recipient.address)>"
        if extensions.dsn {
            if let notify = recipient.notify, !notify.isEmpty { line += " NOTIFY=\(notify.uppercased())" }
            if let orcpt = recipient.originalRecipient, let semicolon = orcpt.firstIndex(of: ";") {
                let type = orcpt[..<semicolon]
                let address = orcpt[orcpt.index(after: semicolon)...]
                line += " ORCPT=\(type);\(XText.encode(String(address)))"
            }
        }
        return line
    }

    mutating func sendNextRecipient() -> [Action] {
        let transaction = self.transaction!
        if nextRecipient < transaction.recipients.count {
            let index = nextRecipient
            nextRecipient += 1
            expected = [.rcpt(index)]
            return [.send([rcptCommand(index)])]
        }
        if accepted.isEmpty { return endTransaction(needsReset: true) }
        expected = [.data]
        return [.send(["DATA"])]
    }

    mutating func failTransaction(with reply: SMTPReply, inReplyTo command: String) -> [Action] {
        for index in transaction!.recipients.indices where results[index] == nil {
            results[index] = RecipientResult(index: index, reply: reply, inReplyTo: command)
        }
        return endTransaction(needsReset: true)
    }

    mutating func finishLocally(_ reply: SMTPReply) -> [Action] {
        let all = transaction!.recipients.indices.map {
            RecipientResult(index: $0, reply: reply, inReplyTo: "", fromServer: false)
        }
        transaction = nil
        return [.finished(all), .ready]
    }

    mutating func endTransaction(needsReset: Bool) -> [Action] {
        let all = transaction!.recipients.indices.compactMap { results[$0] }
        transaction = nil
        results = [:]
        if needsReset {
            expected = [.rset]
            return [.finished(all), .send(["RSET"])]
        }
        return [.finished(all), .ready]
    }

    /// Every recipient still open gets `reply` (421, or a made-up reply for
    /// a lost connection or a timeout).
    mutating func resolveAll(with reply: SMTPReply, inReplyTo command: String) -> [RecipientResult] {
        guard let transaction else { return [] }
        for index in transaction.recipients.indices where results[index] == nil {
            results[index] = RecipientResult(index: index, reply: reply, inReplyTo: command)
        }
        let all = transaction.recipients.indices.compactMap { results[$0] }
        self.transaction = nil
        results = [:]
        accepted = []
        return all
    }

    /// The connection broke or timed out: every open recipient is deferred
    /// with `reason`. After the content went out the message may have been
    /// delivered; deferring risks a duplicate, never a loss.
    public mutating func abandon(reason: String) -> [RecipientResult] {
        let reply = SMTPReply(451, EnhancedStatusCode(4, 4, 2), reason)
        var results = resolveAll(with: reply, inReplyTo: stage)
        for k in results.indices {
            results[k].fromServer = false
            results[k].connectionLost = true
        }
        expected.removeAll()
        return results
    }

    /// Ends an idle session politely.
    public mutating func quit() -> [Action] {
        expected = [.quit]
        return [.send(["QUIT"])]
    }
}
