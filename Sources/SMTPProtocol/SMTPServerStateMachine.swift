import MailCore

/// The server side of one SMTP session as a pure state machine (RFC 5321,
/// with the ESMTP extensions PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES,
/// DSN (RFC 3461), CHUNKING (RFC 3030), SMTPUTF8, STARTTLS and AUTH).
///
/// The machine never does I/O. It takes command lines and the results of the
/// lookups it asked for, and returns what to do next. Lookups that take time
/// (is this recipient acceptable, open a queue file, commit it) are returned
/// as actions; until the matching result comes back the caller must not feed
/// more input, which keeps pipelined replies in order.
public struct SMTPServerStateMachine: Sendable {
    public struct Settings: Sendable {
        public var hostname: String
        public var greeting: String
        /// 0 means no limit (announced as `SIZE 0`, RFC 1870).
        public var messageSizeLimit: Int
        public var recipientLimit: Int
        public var hardErrorLimit: Int
        public var vrfyEnabled: Bool
        /// Ask about the client and sender at MAIL (sendmail without
        /// delay_checks); with false, everything is decided at RCPT.
        public var checksSender: Bool
        /// STARTTLS can be offered (a certificate is loaded).
        public var tlsAvailable = false
        /// MAIL is refused until the session runs over TLS.
        public var tlsRequired = false
        /// AUTH PLAIN and LOGIN are offered, over TLS only.
        public var authEnabled = false
        /// MAIL is refused until the client has authenticated (submission).
        public var authRequired = false
        /// Failed AUTH attempts after which the session ends.
        public var authFailureLimit = 3
        /// Commands sent ahead of time where RFC 2920 does not allow it
        /// (after DATA, or without EHLO's PIPELINING) end the session.
        public var rejectUnauthPipelining = true
        /// Addresses must be `<...>` right after the colon (Postfix's
        /// strict_rfc821_envelopes); otherwise bare addresses and spaces are
        /// tolerated.
        public var strictEnvelopes = false

        public init(hostname: String, greeting: String? = nil, messageSizeLimit: Int = 10_240_000,
                    recipientLimit: Int = 1000, hardErrorLimit: Int = 20, vrfyEnabled: Bool = true,
                    checksSender: Bool = false) {
            self.hostname = hostname
            self.greeting = greeting ?? "\(hostname) ESMTP hikyaku"
            self.messageSizeLimit = messageSizeLimit
            self.recipientLimit = recipientLimit
            self.hardErrorLimit = hardErrorLimit
            self.vrfyEnabled = vrfyEnabled
            self.checksSender = checksSender
        }
    }

    public enum BodyType: String, Sendable {
        case sevenBit = "7BIT"
        case eightBitMIME = "8BITMIME"
    }

    /// What the client asked for and what was accepted, handed to the queue.
    public struct Envelope: Equatable, Sendable {
        public var heloName: String
        public var esmtp: Bool
        public var sender: MailAddress?
        public var declaredSize: Int?
        public var bodyType: BodyType?
        /// RFC 3461 RET and ENVID (decoded), when given at MAIL.
        public var ret: DSNReturn?
        public var envelopeID: String?
        public var recipients: [MailAddress] = []
        /// RFC 3461 NOTIFY and ORCPT of each recipient, in the same order.
        public var recipientDSN: [RecipientDSN] = []
        /// Recipients accepted but to be thrown away (access map DISCARD).
        public var discardedRecipients = 0
        /// The sender check said DISCARD: every recipient is thrown away.
        public var discardAll = false
        /// MAIL FROM carried SMTPUTF8 (RFC 6531): addresses and headers may
        /// be UTF-8, and must only go on to servers that take them.
        public var smtpUTF8 = false
    }

    public enum RecipientVerdict: Equatable, Sendable {
        case accept
        case reject(SMTPReply)
        /// Answer 250, then drop the message for this recipient.
        case discard
    }

    /// How the DATA section ended.
    public enum DataOutcome: Equatable, Sendable {
        case complete(size: Int)
        case bareLineEnding(bareLF: Bool)
    }

    public enum CommitResult: Equatable, Sendable {
        case queued(QueueID)
        /// Every recipient was discarded: nothing was queued.
        case discarded
        /// Handed to the queue; its ID is not known yet (sendmail -bs).
        case submitted
        case failed(SMTPReply)
    }

    public enum Action: Equatable, Sendable {
        /// Send these replies; close the connection afterwards if asked.
        case send([SMTPReply], close: Bool)
        /// Decide on this recipient, then call ``recipientVerified(_:)``.
        case verifyRecipient(MailAddress)
        /// Decide on the client and this sender (nil: `<>`), then call
        /// ``senderVerified(_:)``.
        case verifySender(MailAddress?)
        /// Open a queue file for this envelope, then call ``dataStarted(queueID:)``
        /// or ``dataStartFailed(_:)``. After 354 the caller switches to data framing.
        case openMessage(Envelope)
        /// Data is complete: commit the queue file, then call ``commitFinished(_:)``.
        case commitMessage(Envelope, size: Int)
        /// Discard the open queue file, then send the replies.
        case abortMessage([SMTPReply], close: Bool)
        /// Send the reply (220), throw away whatever the client sent after
        /// STARTTLS in plain text, put TLS under the connection, and call
        /// ``tlsStarted()`` once the handshake is done.
        case startTLS(SMTPReply)
        /// Check these credentials (mechanism named for the log), then call
        /// ``authenticationFinished(_:)``.
        case authenticate(SASLCredentials, mechanism: String)
        /// Read exactly `size` octets into the open message (BDAT), then
        /// call ``chunkReceived(totalSize:)``; `last` ends the message.
        case receiveChunk(size: Int, last: Bool)
        /// Read and throw away `size` octets (a refused BDAT: RFC 3030 says
        /// its chunk still follows), discarding the open message first if
        /// `abort`, then send the replies.
        case discardChunk(size: Int, replies: [SMTPReply], abort: Bool, close: Bool)
    }

    /// What the authentication service said.
    public enum AuthenticationResult: Equatable, Sendable {
        /// The user the service names.
        case success(String)
        case failure(String)
        /// The service could not be asked.
        case unavailable(String)
    }

    enum State: Sendable, Equatable {
        case connected
        case ready
        case transaction
        case verifying(MailAddress, RecipientDSN)
        case verifyingSender(Envelope)
        case opening
        case data
        case committing
        case closed
        /// An AUTH exchange waits for the client's next line: PLAIN's
        /// message, or LOGIN's user name (user nil) or password.
        case authenticating(mechanism: String, user: String?)
        /// The credentials are being checked.
        case checkingCredentials
        /// The octets of a BDAT chunk are being read.
        case chunk(size: Int, last: Bool)
    }

    public let settings: Settings
    var state: State = .connected
    var heloName: String? = nil
    var esmtp = false
    var envelope: Envelope? = nil
    public private(set) var errorCount = 0
    /// The session runs over TLS (after STARTTLS, or from the start on an
    /// implicit-TLS port).
    public private(set) var tlsActive = false
    /// The user the session authenticated as (SMTP AUTH).
    public private(set) var authenticatedUser: String? = nil
    public private(set) var authFailures = 0
    /// A BDAT transaction has its message open (RFC 3030): the next chunks
    /// add to it, and RSET, EHLO, QUIT or a failure must discard it.
    public private(set) var hasOpenMessage = false
    /// Content octets received in this BDAT transaction so far.
    var chunkedSize = 0
    /// The BDAT that asked for the message to be opened.
    var pendingChunk: (size: Int, last: Bool)? = nil
    /// EHLO or HELO came with commands behind it, before its reply.
    var spokeAhead = false

    public init(settings: Settings) {
        self.settings = settings
    }

    /// True while DATA content is expected.
    public var isReceivingData: Bool { state == .data }
    /// True while the octets of a BDAT chunk are expected.
    public var isReceivingChunk: Bool {
        if case .chunk = state { return true }
        return false
    }
    /// An AUTH exchange waits for the client's next line.
    public var isAuthenticating: Bool {
        if case .authenticating = state { return true }
        return false
    }
    public var isClosed: Bool { state == .closed }
    /// The envelope of the current transaction, if any.
    public var currentEnvelope: Envelope? { envelope }

    // MARK: Replies

    static let enhanced = EnhancedStatusCode.self
    var ok: SMTPReply { SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok") }

    /// The session is TLS from its first byte (an implicit-TLS port, RFC 8314).
    public mutating func beginsInTLS() {
        tlsActive = true
    }

    /// One line of an AUTH exchange (or AUTH's initial response).
    mutating func continueAuthentication(_ line: [UInt8], mechanism: String, user: String?) -> Action {
        state = .ready
        if line == [UInt8(ascii: "*")] {
            return error(SMTPReply(501, EnhancedStatusCode(5, 7, 0), "Authentication aborted"))
        }
        // "=" is an empty initial response (RFC 4954 section 4).
        guard let decoded = line == [UInt8(ascii: "=")] ? [] : Base64.decode(String(decoding: line, as: UTF8.self)) else {
            return error(SMTPReply(501, EnhancedStatusCode(5, 5, 2), "Cannot decode response"))
        }
        switch mechanism {
        case "PLAIN":
            guard let credentials = SASLCredentials(plain: decoded) else {
                return authFailed(SMTPReply(535, EnhancedStatusCode(5, 7, 8), "Error: authentication failed: malformed PLAIN message"))
            }
            state = .checkingCredentials
            return .authenticate(credentials, mechanism: "PLAIN")
        default:
            guard decoded.count <= 255, let text = String(validating: decoded, as: UTF8.self), !text.utf8.contains(0) else {
                return error(SMTPReply(501, EnhancedStatusCode(5, 5, 2), "Cannot decode response"))
            }
            guard let user else {
                state = .authenticating(mechanism: "LOGIN", user: text)
                return .send([SMTPReply(334, nil, "UGFzc3dvcmQ6")], close: false)
            }
            state = .checkingCredentials
            return .authenticate(SASLCredentials(user: user, password: text), mechanism: "LOGIN")
        }
    }

    /// The authentication service's answer.
    public mutating func authenticationFinished(_ result: AuthenticationResult) -> Action {
        precondition(state == .checkingCredentials, "authenticationFinished without a pending check")
        state = .ready
        switch result {
        case .success(let user):
            authenticatedUser = user
            return .send([SMTPReply(235, EnhancedStatusCode(2, 7, 0), "Authentication successful")], close: false)
        case .failure(let reason):
            return authFailed(SMTPReply(535, EnhancedStatusCode(5, 7, 8),
                                        reason.isEmpty ? "Error: authentication failed" : "Error: authentication failed: \(reason)"))
        case .unavailable:
            return error(SMTPReply(454, EnhancedStatusCode(4, 7, 0), "Temporary authentication failure"))
        }
    }

    mutating func authFailed(_ reply: SMTPReply) -> Action {
        authFailures += 1
        if authFailures >= settings.authFailureLimit {
            state = .closed
            return .send([reply, SMTPReply(421, EnhancedStatusCode(4, 7, 0), "\(settings.hostname) Error: too many failed authentication attempts")], close: true)
        }
        return error(reply)
    }

    /// The TLS handshake is done: RFC 3207 section 4.2, everything known
    /// from before it is forgotten, and the client must say EHLO again.
    public mutating func tlsStarted() {
        tlsActive = true
        state = .connected
        heloName = nil
        esmtp = false
        envelope = nil
        authenticatedUser = nil
        spokeAhead = false
    }

    public mutating func greeting() -> Action {
        .send([SMTPReply(220, nil, settings.greeting)], close: false)
    }

    /// The client sent something before the greeting (RFC 5321 section
    /// 3.1: it must wait for it), as spamware that does not wait does.
    public mutating func spokeBeforeGreeting() -> Action {
        state = .closed
        return .send([SMTPReply(554, EnhancedStatusCode(5, 5, 0), "\(settings.hostname) Error: client sent data before the greeting")], close: true)
    }

    /// The idle or command timeout expired.
    public mutating func timedOut() -> Action {
        state = .closed
        return .send([SMTPReply(421, EnhancedStatusCode(4, 4, 2), "\(settings.hostname) Error: timeout exceeded")], close: true)
    }

    /// A command line longer than the limit arrived (its rest was discarded).
    public mutating func lineTooLong() -> Action {
        if case .authenticating = state {
            // The exchange ends (RFC 4954 section 4): the client's next line
            // is a command, not a SASL response.
            state = .ready
            return error(SMTPReply(500, EnhancedStatusCode(5, 5, 6), "Authentication Exchange line is too long"))
        }
        return error(SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Error: line too long"))
    }

    // MARK: Commands

    /// One command line. `pipelined` says more input had already arrived
    /// behind it: the client did not wait for this command's reply.
    public mutating func receive(line: some Collection<UInt8>, pipelined: Bool = false) -> Action {
        precondition(state != .data && state != .committing && state != .opening && !isVerifying
                     && state != .checkingCredentials && !isReceivingChunk, "input fed while an action is pending")
        guard state != .closed else { return .send([], close: true) }
        if case .authenticating(let mechanism, let user) = state {
            return continueAuthentication(Array(line), mechanism: mechanism, user: user)
        }
        let command: SMTPCommand
        do {
            command = try SMTPCommand.parse(line, strictEnvelopes: settings.strictEnvelopes)
        } catch .badChunkSize {
            // The chunk's length is unknown, so the next command cannot be
            // found: nothing sensible can follow.
            return closing([SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Syntax: BDAT count [LAST]")])
        } catch let parseError {
            return error(reply(for: parseError))
        }
        if settings.rejectUnauthPipelining && authenticatedUser == nil && isImproperlyPipelined(command, pipelined: pipelined) {
            return closing([SMTPReply(503, EnhancedStatusCode(5, 5, 0), "Error: improper use of SMTP command pipelining")])
        }
        switch command {
        case .helo(let name), .ehlo(let name):
            let isEHLO: Bool
            if case .ehlo = command { isEHLO = true } else { isEHLO = false }
            heloName = name
            esmtp = isEHLO
            envelope = nil
            state = .ready
            if !isEHLO {
                return endingOpenMessage(.send([SMTPReply(250, nil, settings.hostname)], close: false))
            }
            var keywords = [settings.hostname, "PIPELINING", "SIZE \(settings.messageSizeLimit)"]
            if settings.tlsAvailable && !tlsActive { keywords.append("STARTTLS") }
            if settings.authEnabled && tlsActive { keywords.append("AUTH PLAIN LOGIN") }
            keywords += ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"]
            return endingOpenMessage(.send([SMTPReply(250, nil, lines: keywords)], close: false))

        case .auth(let mechanism, let initial):
            guard settings.authEnabled else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: authentication not enabled"))
            }
            guard state != .connected else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: send HELO/EHLO first"))
            }
            guard authenticatedUser == nil else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: already authenticated"))
            }
            guard envelope == nil else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: MAIL transaction in progress"))
            }
            guard tlsActive else {
                return error(SMTPReply(538, EnhancedStatusCode(5, 7, 11), "Encryption required for requested authentication mechanism"))
            }
            switch mechanism {
            case "PLAIN":
                guard let initial else {
                    state = .authenticating(mechanism: "PLAIN", user: nil)
                    return .send([SMTPReply(334, nil, "")], close: false)
                }
                return continueAuthentication(Array(initial.utf8), mechanism: "PLAIN", user: nil)
            case "LOGIN":
                guard let initial else {
                    state = .authenticating(mechanism: "LOGIN", user: nil)
                    return .send([SMTPReply(334, nil, "VXNlcm5hbWU6")], close: false)
                }
                return continueAuthentication(Array(initial.utf8), mechanism: "LOGIN", user: nil)
            default:
                return error(SMTPReply(504, EnhancedStatusCode(5, 5, 4), "Unsupported authentication mechanism"))
            }

        case .startTLS:
            guard !tlsActive else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: TLS already active"))
            }
            guard settings.tlsAvailable else {
                return error(SMTPReply(502, EnhancedStatusCode(5, 5, 1), "Error: command not implemented"))
            }
            guard envelope == nil else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: MAIL transaction in progress"))
            }
            return .startTLS(SMTPReply(220, EnhancedStatusCode(2, 0, 0), "Ready to start TLS"))

        case .mail(let sender, let parameters):
            guard state != .connected else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: send HELO/EHLO first"))
            }
            guard envelope == nil else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: nested MAIL command"))
            }
            guard tlsActive || !settings.tlsRequired else {
                return error(SMTPReply(530, EnhancedStatusCode(5, 7, 0), "Must issue a STARTTLS command first"))
            }
            guard authenticatedUser != nil || !settings.authRequired else {
                return error(SMTPReply(530, EnhancedStatusCode(5, 7, 0), "Authentication required"))
            }
            var candidate = Envelope(heloName: heloName ?? "", esmtp: esmtp, sender: sender)
            for parameter in parameters {
                guard esmtp else {
                    return error(SMTPReply(555, EnhancedStatusCode(5, 5, 4), "Unsupported option: \(parameter.keyword)"))
                }
                switch parameter.keyword {
                case "SIZE":
                    guard let value = parameter.value, let size = Int(value), size >= 0,
                          value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
                        return error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad message size syntax"))
                    }
                    guard settings.messageSizeLimit == 0 || size <= settings.messageSizeLimit else {
                        return error(SMTPReply(552, EnhancedStatusCode(5, 3, 4), "Message size exceeds fixed limit"))
                    }
                    candidate.declaredSize = size
                case "BODY":
                    guard let value = parameter.value?.uppercased(), let body = BodyType(rawValue: value) else {
                        return error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad BODY keyword: \(parameter.value ?? "")"))
                    }
                    candidate.bodyType = body
                case "RET":
                    // RFC 3461 section 4.3; once per command.
                    guard candidate.ret == nil, let value = parameter.value, let ret = DSNReturn(parameter: value) else {
                        return error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad RET parameter syntax"))
                    }
                    candidate.ret = ret
                case "AUTH" where settings.authEnabled:
                    // RFC 4954 section 5: the identity a relaying server
                    // vouches for. Checked for syntax and not trusted.
                    guard let value = parameter.value, value == "<>" || XText.decode(value) != nil else {
                        return error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad AUTH parameter syntax"))
                    }
                case "SMTPUTF8":
                    // RFC 6531 section 3.4: no value, once.
                    guard parameter.value == nil, !candidate.smtpUTF8 else {
                        return error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad SMTPUTF8 parameter syntax"))
                    }
                    candidate.smtpUTF8 = true
                case "ENVID":
                    // RFC 3461 section 4.4: xtext, printable once decoded, at most 100 characters.
                    guard candidate.envelopeID == nil, let value = parameter.value,
                          let envelopeID = DSNEnvelopeID.parse(parameter: value) else {
                        return error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad ENVID parameter syntax"))
                    }
                    candidate.envelopeID = envelopeID
                default:
                    return error(SMTPReply(555, EnhancedStatusCode(5, 5, 4), "Unsupported option: \(parameter.keyword)"))
                }
            }
            if let sender, !sender.isASCII, !candidate.smtpUTF8 {
                return error(SMTPReply(553, EnhancedStatusCode(5, 6, 7), "Must declare SMTPUTF8 to send Unicode addresses"))
            }
            if settings.checksSender {
                state = .verifyingSender(candidate)
                return .verifySender(candidate.sender)
            }
            envelope = candidate
            state = .transaction
            return .send([SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok")], close: false)

        case .rcpt(let recipient, let parameters):
            guard envelope != nil else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: need MAIL command"))
            }
            guard !hasOpenMessage else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: RCPT after BDAT"))
            }
            guard recipient.isASCII || envelope!.smtpUTF8 else {
                return error(SMTPReply(553, EnhancedStatusCode(5, 6, 7), "Must declare SMTPUTF8 to send Unicode addresses"))
            }
            var dsn = RecipientDSN()
            var sawNotify = false
            for parameter in parameters {
                guard esmtp else {
                    return error(SMTPReply(555, EnhancedStatusCode(5, 5, 4), "Unsupported option: \(parameter.keyword)"))
                }
                switch parameter.keyword {
                case "NOTIFY":
                    // RFC 3461 section 4.1: NEVER, or a list of SUCCESS,
                    // FAILURE and DELAY; once per command.
                    guard !sawNotify, let value = parameter.value, let notify = DSNNotify(parameter: value) else {
                        return error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Error: Bad NOTIFY parameter syntax"))
                    }
                    sawNotify = true
                    dsn.notify = notify
                case "ORCPT":
                    // RFC 3461 section 4.2: addr-type ";" xtext.
                    guard dsn.originalRecipient == nil, let value = parameter.value,
                          let original = OriginalRecipient(parameter: value) else {
                        return error(SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Error: Bad ORCPT parameter syntax"))
                    }
                    dsn.originalRecipient = original
                default:
                    return error(SMTPReply(555, EnhancedStatusCode(5, 5, 4), "Unsupported option: \(parameter.keyword)"))
                }
            }
            guard envelope!.recipients.count < settings.recipientLimit else {
                return error(SMTPReply(452, EnhancedStatusCode(4, 5, 3), "Error: too many recipients"))
            }
            state = .verifying(recipient, dsn)
            return .verifyRecipient(recipient)

        case .data:
            guard let envelope else {
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: need RCPT command"))
            }
            guard !hasOpenMessage else {
                // RFC 3030 section 3: one transaction, one of DATA or BDAT.
                return error(SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: DATA after BDAT"))
            }
            guard !envelope.recipients.isEmpty || envelope.discardedRecipients > 0 else {
                return error(SMTPReply(554, EnhancedStatusCode(5, 5, 1), "Error: no valid recipients"))
            }
            state = .opening
            return .openMessage(envelope)

        case .bdat(let size, let last):
            guard let envelope else {
                return chunkError(size, SMTPReply(503, EnhancedStatusCode(5, 5, 1), "Error: need RCPT command"))
            }
            if hasOpenMessage {
                state = .chunk(size: size, last: last)
                return .receiveChunk(size: size, last: last)
            }
            guard !envelope.recipients.isEmpty || envelope.discardedRecipients > 0 else {
                return chunkError(size, SMTPReply(554, EnhancedStatusCode(5, 5, 1), "Error: no valid recipients"))
            }
            hasOpenMessage = true
            chunkedSize = 0
            pendingChunk = (size, last)
            state = .opening
            return .openMessage(envelope)

        case .rset:
            envelope = nil
            if state != .connected { state = .ready }
            return endingOpenMessage(.send([ok], close: false))

        case .noop:
            return .send([ok], close: false)

        case .quit:
            state = .closed
            return endingOpenMessage(.send([SMTPReply(221, EnhancedStatusCode(2, 0, 0), "Bye")], close: true))

        case .help:
            return .send([SMTPReply(214, EnhancedStatusCode(2, 0, 0), lines: [
                "This is hikyaku. Commands:",
                "HELO EHLO MAIL RCPT DATA BDAT",
                "RSET NOOP QUIT HELP VRFY" + (settings.tlsAvailable ? " STARTTLS" : "") + (settings.authEnabled ? " AUTH" : ""),
                "End of HELP info",
            ])], close: false)

        case .vrfy:
            guard settings.vrfyEnabled else {
                return error(SMTPReply(502, EnhancedStatusCode(5, 5, 1), "VRFY command is disabled"))
            }
            return .send([SMTPReply(252, EnhancedStatusCode(2, 5, 2), "Cannot VRFY user; try RCPT to attempt delivery")], close: false)
        }
    }

    var isVerifying: Bool {
        switch state {
        case .verifying, .verifyingSender: return true
        default: return false
        }
    }

    public mutating func senderVerified(_ verdict: RecipientVerdict) -> Action {
        guard case .verifyingSender(var candidate) = state else {
            preconditionFailure("senderVerified without a pending verification")
        }
        switch verdict {
        case .accept, .discard:
            candidate.discardAll = verdict == .discard
            envelope = candidate
            state = .transaction
            return .send([SMTPReply(250, EnhancedStatusCode(2, 1, 0), "Ok")], close: false)
        case .reject(let reply):
            state = .ready
            return error(reply)
        }
    }

    // MARK: Results of actions

    public mutating func recipientVerified(_ verdict: RecipientVerdict) -> Action {
        guard case .verifying(let recipient, let dsn) = state else {
            preconditionFailure("recipientVerified without a pending verification")
        }
        state = .transaction
        switch envelope!.discardAll ? .discard : verdict {
        case .accept:
            envelope!.recipients.append(recipient)
            envelope!.recipientDSN.append(dsn)
            return .send([SMTPReply(250, EnhancedStatusCode(2, 1, 5), "Ok")], close: false)
        case .discard:
            envelope!.discardedRecipients += 1
            return .send([SMTPReply(250, EnhancedStatusCode(2, 1, 5), "Ok")], close: false)
        case .reject(let reply):
            return error(reply)
        }
    }

    /// The message is open: DATA's 354, or BDAT's first chunk to read.
    public mutating func dataStarted() -> Action {
        precondition(state == .opening)
        if let chunk = pendingChunk {
            pendingChunk = nil
            state = .chunk(size: chunk.size, last: chunk.last)
            return .receiveChunk(size: chunk.size, last: chunk.last)
        }
        state = .data
        return .send([SMTPReply(354, nil, "End data with <CR><LF>.<CR><LF>")], close: false)
    }

    public mutating func dataStartFailed(_ reply: SMTPReply) -> Action {
        precondition(state == .opening)
        envelope = nil
        state = .ready
        if let chunk = pendingChunk {
            pendingChunk = nil
            hasOpenMessage = false
            return chunkError(chunk.size, reply)
        }
        return error(reply)
    }

    /// A BDAT chunk's octets were all read; `totalSize` is the message's
    /// content so far.
    public mutating func chunkReceived(totalSize: Int) -> Action {
        guard case .chunk(let size, let last) = state else {
            preconditionFailure("chunkReceived without a chunk being read")
        }
        chunkedSize = totalSize
        if settings.messageSizeLimit > 0 && totalSize > settings.messageSizeLimit {
            envelope = nil
            hasOpenMessage = false
            state = .ready
            errorCount += 1
            return .abortMessage([SMTPReply(552, EnhancedStatusCode(5, 3, 4), "Error: message file too big")], close: false)
        }
        if last {
            state = .committing
            return .commitMessage(envelope!, size: totalSize)
        }
        state = .transaction
        return .send([SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok: \(size) octets received")], close: false)
    }

    public mutating func dataEnded(_ outcome: DataOutcome) -> Action {
        precondition(state == .data)
        let current = envelope!
        switch outcome {
        case .complete(let size):
            if settings.messageSizeLimit > 0 && size > settings.messageSizeLimit {
                envelope = nil
                state = .ready
                errorCount += 1
                return .abortMessage([SMTPReply(552, EnhancedStatusCode(5, 3, 4), "Error: message file too big")], close: false)
            }
            state = .committing
            return .commitMessage(current, size: size)
        case .bareLineEnding(let bareLF):
            envelope = nil
            state = .closed
            let what = bareLF ? "bare <LF>" : "bare <CR>"
            return .abortMessage([SMTPReply(550, EnhancedStatusCode(5, 5, 2), "Error: \(what) received; lines must end with <CR><LF>")], close: true)
        }
    }

    public mutating func commitFinished(_ result: CommitResult) -> Action {
        precondition(state == .committing)
        envelope = nil
        hasOpenMessage = false
        chunkedSize = 0
        state = .ready
        switch result {
        case .queued(let id):
            return .send([SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok: queued as \(id)")], close: false)
        case .discarded:
            return .send([SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok: discarded")], close: false)
        case .submitted:
            return .send([SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok: queued")], close: false)
        case .failed(let reply):
            return error(reply)
        }
    }

    // MARK: Errors

    /// RFC 2920 section 3.1: a client may send commands ahead only after
    /// EHLO has offered PIPELINING, and EHLO, HELO and DATA end a group.
    /// (BDAT chunks may be pipelined, RFC 3030 section 4.2.)
    mutating func isImproperlyPipelined(_ command: SMTPCommand, pipelined: Bool) -> Bool {
        switch command {
        case .helo, .ehlo:
            if pipelined { spokeAhead = true }
            return false
        case .mail, .rcpt:
            return spokeAhead || (pipelined && !esmtp)
        case .data:
            return spokeAhead || pipelined
        case .bdat:
            return spokeAhead || (pipelined && !esmtp)
        default:
            return false
        }
    }

    /// Ends the session with these replies, discarding an open message.
    mutating func closing(_ replies: [SMTPReply]) -> Action {
        state = .closed
        envelope = nil
        return endingOpenMessage(.send(replies, close: true))
    }

    /// RSET, HELO, EHLO and QUIT end a BDAT transaction: its open message
    /// is discarded before the reply goes out.
    mutating func endingOpenMessage(_ action: Action) -> Action {
        guard hasOpenMessage, case .send(let replies, let close) = action else { return action }
        hasOpenMessage = false
        envelope = nil
        chunkedSize = 0
        return .abortMessage(replies, close: close)
    }

    /// A refused BDAT: its chunk is read and thrown away, then the replies.
    mutating func chunkError(_ size: Int, _ reply: SMTPReply, abort: Bool = false) -> Action {
        errorCount += 1
        if errorCount >= settings.hardErrorLimit {
            state = .closed
            return .discardChunk(size: size, replies: [reply, SMTPReply(421, EnhancedStatusCode(4, 7, 0), "\(settings.hostname) Error: too many errors")],
                                 abort: abort, close: true)
        }
        return .discardChunk(size: size, replies: [reply], abort: abort, close: false)
    }

    /// Counts an error reply; past the hard limit the session ends with 421.
    mutating func error(_ reply: SMTPReply) -> Action {
        errorCount += 1
        if errorCount >= settings.hardErrorLimit {
            state = .closed
            return .send([reply, SMTPReply(421, EnhancedStatusCode(4, 7, 0), "\(settings.hostname) Error: too many errors")], close: true)
        }
        return .send([reply], close: false)
    }

    func reply(for error: SMTPCommandError) -> SMTPReply {
        switch error {
        case .empty:
            return SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Error: bad syntax")
        case .unrecognized:
            return SMTPReply(502, EnhancedStatusCode(5, 5, 2), "Error: command not recognized")
        case .syntax(let verb):
            switch verb {
            case "HELO", "EHLO": return SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Syntax: \(verb) hostname")
            case "MAIL": return SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Syntax: MAIL FROM:<address>")
            case "RCPT": return SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Syntax: RCPT TO:<address>")
            case "VRFY": return SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Syntax: VRFY address")
            case "": return SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Error: bad syntax")
            default: return SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Syntax: \(verb)")
            }
        case .badSender(let why):
            if why == .nonASCII {
                return SMTPReply(553, EnhancedStatusCode(5, 6, 7), "Must declare SMTPUTF8 to send Unicode addresses")
            }
            return SMTPReply(501, EnhancedStatusCode(5, 1, 7), "Bad sender address syntax")
        case .badRecipient(let why):
            if why == .nonASCII {
                return SMTPReply(553, EnhancedStatusCode(5, 6, 7), "Must declare SMTPUTF8 to send Unicode addresses")
            }
            return SMTPReply(501, EnhancedStatusCode(5, 1, 3), "Bad recipient address syntax")
        case .badParameter(let word):
            return SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Bad parameter syntax: \(word)")
        case .badEncoding:
            return SMTPReply(500, EnhancedStatusCode(5, 5, 2), "Error: bad UTF-8 syntax")
        case .badChunkSize:
            return SMTPReply(501, EnhancedStatusCode(5, 5, 4), "Syntax: BDAT count [LAST]")
        }
    }
}
