import MailCore
import Testing
@testable import SMTPProtocol

/// Drives a state machine over a raw byte stream the way smtpd does: command
/// lines, BDAT chunks read (or thrown away) by their declared size, DATA
/// through the framer. Verification and queue steps succeed unless told.
struct SessionDriver {
    var machine: SMTPServerStateMachine
    var replies: [String] = []
    var committed: [[UInt8]] = []
    var aborted = 0
    var content: [UInt8] = []
    var decoder = ChunkDecoder()
    var framer = DataFramer()
    var closed = false
    var openFails: SMTPReply? = nil
    /// Input is fed as one read: every line but the last has input behind it.
    var markPipelining = false

    init(settings: SMTPServerStateMachine.Settings = .init(hostname: "mx.example.jp")) {
        machine = SMTPServerStateMachine(settings: settings)
        take(machine.greeting())
    }

    mutating func take(_ first: SMTPServerStateMachine.Action) {
        var action = first
        while true {
            switch action {
            case .send(let list, let close):
                replies += list.map(\.description)
                if close { closed = true }
                return
            case .abortMessage(let list, let close):
                aborted += 1
                content.removeAll()
                replies += list.map(\.description)
                if close { closed = true }
                return
            case .verifyRecipient:
                action = machine.recipientVerified(.accept)
            case .verifySender:
                action = machine.senderVerified(.accept)
            case .openMessage:
                content.removeAll()
                decoder = ChunkDecoder()
                framer = DataFramer()
                if let openFails {
                    action = machine.dataStartFailed(openFails)
                } else {
                    action = machine.dataStarted()
                }
            case .commitMessage:
                committed.append(content)
                content.removeAll()
                action = machine.commitFinished(.queued(QueueID(seconds: 1, microseconds: 0, inode: 1)))
            case .receiveChunk, .discardChunk, .startTLS, .authenticate:
                pendingChunk = action
                return
            }
        }
    }

    var pendingChunk: SMTPServerStateMachine.Action? = nil

    /// Feeds a byte stream as smtpd would.
    mutating func feed(_ text: String) {
        var input = Array(text.utf8)[...]
        while !closed {
            if let chunk = pendingChunk {
                pendingChunk = nil
                switch chunk {
                case .receiveChunk(let size, let last):
                    let piece = input.prefix(size)
                    precondition(piece.count == size, "test input ends inside a chunk")
                    decoder.feed(Array(piece), into: &content)
                    input = input.dropFirst(size)
                    if last { decoder.finish(into: &content) }
                    take(machine.chunkReceived(totalSize: decoder.contentSize))
                case .discardChunk(let size, let list, let abort, let close):
                    input = input.dropFirst(size)
                    if abort { aborted += 1; content.removeAll() }
                    replies += list.map(\.description)
                    if close { closed = true }
                default:
                    return
                }
                continue
            }
            if machine.isReceivingData {
                let event = Array(input).withUnsafeBytes { framer.feed($0, into: &content) }
                switch event {
                case .end(let consumed):
                    input = input.dropFirst(consumed)
                    take(machine.dataEnded(.complete(size: framer.contentSize)))
                case .needMore:
                    return
                case .bareLineEnding(let bareLF):
                    take(machine.dataEnded(.bareLineEnding(bareLF: bareLF)))
                    return
                }
                continue
            }
            guard let newline = input.firstIndex(of: 10) else { return }
            var line = Array(input[..<newline])
            input = input[(newline + 1)...]
            if line.last == 13 { line.removeLast() }
            take(machine.receive(line: line, pipelined: markPipelining && !input.isEmpty))
        }
    }
}

@Suite("CHUNKING (BDAT, RFC 3030)")
struct ChunkingTests {
    static let envelope = "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.jp>\r\n"

    @Test("EHLO offers CHUNKING; chunks make one message, CRLF stored as LF")
    func chunks() {
        var session = SessionDriver()
        session.feed(Self.envelope + "BDAT 9\r\nSubject: BDAT 11 LAST\r\nx\r\n\r\nbody\r\n")
        #expect(session.replies[1].contains("CHUNKING"))
        #expect(Array(session.replies.suffix(2)) == ["250 2.0.0 Ok: 9 octets received", "250 2.0.0 Ok: queued as 0000010000z1"])
        #expect(session.committed == [Array("Subject: x\n\nbody\n".utf8)])
    }

    @Test("a CR at the end of one chunk and an LF at the start of the next are one line end")
    func crossingLineEnd() {
        var session = SessionDriver()
        session.feed(Self.envelope + "BDAT 4\r\nA:b\rBDAT 3 LAST\r\n\n\nz")
        #expect(session.committed == [Array("A:b\n\nz".utf8)])
    }

    @Test("dots and end-of-data sequences inside a chunk are content, never an end")
    func noSmuggling() {
        let body = "x\r\n.\r\nMAIL FROM:<evil@example.net>\r\n\n.\n\r\n"
        var session = SessionDriver()
        session.feed(Self.envelope + "BDAT \(body.utf8.count) LAST\r\n" + body + "QUIT\r\n")
        #expect(session.committed == [Array("x\n.\nMAIL FROM:<evil@example.net>\n\n.\n\n".utf8)])
        #expect(session.replies.last == "221 2.0.0 Bye")
    }

    @Test("BDAT 0 LAST ends a chunked message")
    func emptyLast() {
        var session = SessionDriver()
        session.feed(Self.envelope + "BDAT 2\r\nhi\r\nBDAT 0 LAST\r\n")
        #expect(session.committed == [Array("hi".utf8)])
    }

    @Test("a refused BDAT's chunk is read and thrown away, never taken as commands")
    func refusedChunkSkipped() {
        var session = SessionDriver()
        let junk = "RCPT TO:<x@example.jp>\r\n"
        session.feed("EHLO c\r\nBDAT \(junk.utf8.count) LAST\r\n" + junk + "NOOP\r\n")
        #expect(session.replies.suffix(2) == ["503 5.5.1 Error: need RCPT command", "250 2.0.0 Ok"])
        #expect(session.committed.isEmpty)
    }

    @Test("a chunk past the size limit aborts the message; the next chunks are refused and skipped")
    func sizeLimit() {
        var settings = SMTPServerStateMachine.Settings(hostname: "mx.example.jp")
        settings.messageSizeLimit = 10
        var session = SessionDriver(settings: settings)
        session.feed(Self.envelope + "BDAT 12\r\n0123456789ab" + "BDAT 4 LAST\r\nRSET" + "NOOP\r\n")
        #expect(session.replies.suffix(3) == ["552 5.3.4 Error: message file too big", "503 5.5.1 Error: need RCPT command", "250 2.0.0 Ok"])
        #expect(session.aborted == 1)
        #expect(session.committed.isEmpty)
    }

    @Test("RSET, EHLO and QUIT discard an open chunked message; DATA and RCPT cannot join it", arguments: [
        ("RSET\r\n", "250 2.0.0 Ok", 1),
        ("EHLO again\r\n", "250 mx.example.jp", 1),
        ("QUIT\r\n", "221 2.0.0 Bye", 1),
        ("DATA\r\n", "503 5.5.1 Error: DATA after BDAT", 0),
        ("RCPT TO:<c@example.jp>\r\n", "503 5.5.1 Error: RCPT after BDAT", 0),
    ])
    func endingTheTransaction(command: String, expected: String, aborts: Int) {
        var session = SessionDriver()
        session.feed(Self.envelope + "BDAT 2\r\nhi" + command)
        #expect(session.replies.last?.hasPrefix(expected) == true)
        #expect(session.aborted == aborts)
        #expect(session.committed.isEmpty)
        #expect(aborts == 0 || session.machine.currentEnvelope == nil)
    }

    @Test("an unreadable chunk size ends the session", arguments: ["BDAT", "BDAT x", "BDAT -1", "BDAT 1 FIRST", "BDAT 1234567890123456789"])
    func badSize(line: String) {
        var session = SessionDriver()
        session.feed(Self.envelope + line + "\r\nNOOP\r\n")
        #expect(session.replies.last == "501 5.5.4 Syntax: BDAT count [LAST]")
        #expect(session.closed)
    }

    @Test("a failed open still skips the first chunk")
    func openFails() {
        var session = SessionDriver()
        session.openFails = SMTPReply(451, EnhancedStatusCode(4, 3, 0), "Error: queue file write error")
        session.feed(Self.envelope + "BDAT 6 LAST\r\nNOOP\r\nNOOP\r\n")
        #expect(session.replies.suffix(2) == ["451 4.3.0 Error: queue file write error", "250 2.0.0 Ok"])
        #expect(!session.machine.hasOpenMessage)
    }

    @Test("the chunk decoder gives the same bytes however the input is split")
    func decoderSplits() {
        let input = Array("a\r\nb\rc\n\r\r\nd\r".utf8)
        var whole: [UInt8] = []
        var one = ChunkDecoder()
        one.feed(input, into: &whole)
        one.finish(into: &whole)
        #expect(whole == Array("a\nb\rc\n\r\nd\r".utf8))
        for split in 0...input.count {
            var out: [UInt8] = []
            var decoder = ChunkDecoder()
            decoder.feed(Array(input[..<split]), into: &out)
            decoder.feed(Array(input[split...]), into: &out)
            decoder.finish(into: &out)
            #expect(out == whole)
            #expect(decoder.contentSize == whole.count)
        }
    }
}

@Suite("Pipelining, greeting and envelope syntax rules")
struct SessionDisciplineTests {
    @Test("pipelining after EHLO's PIPELINING is allowed up to DATA")
    func allowedPipelining() {
        var session = SessionDriver()
        session.feed("EHLO c\r\n")
        session.markPipelining = true
        session.feed("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.jp>\r\nDATA\r\n")
        #expect(session.replies.last == "354 End data with <CR><LF>.<CR><LF>")
        session.feed("x\r\n.\r\nQUIT\r\n")
        #expect(session.committed.count == 1)
    }

    @Test("commands sent ahead where RFC 2920 forbids it end the session", arguments: [
        // Content sent before the 354.
        ("EHLO c\r\n", "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.jp>\r\nDATA\r\nSubject: spam\r\n"),
        // HELO offers no PIPELINING.
        ("HELO c\r\n", "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.jp>\r\n"),
        // EHLO ends a group: the client did not read its reply.
        ("", "EHLO c\r\nMAIL FROM:<a@example.org>\r\n"),
    ])
    func improperPipelining(first: String, then: String) {
        var session = SessionDriver()
        session.feed(first)
        session.markPipelining = true
        session.feed(then)
        #expect(session.replies.last == "503 5.5.0 Error: improper use of SMTP command pipelining")
        #expect(session.closed)
        #expect(session.committed.isEmpty)
    }

    @Test("with the rule off, early talkers are served")
    func ruleOff() {
        var settings = SMTPServerStateMachine.Settings(hostname: "mx.example.jp")
        settings.rejectUnauthPipelining = false
        var session = SessionDriver(settings: settings)
        session.markPipelining = true
        session.feed("HELO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.jp>\r\nDATA\r\nx\r\n.\r\n")
        #expect(session.committed.count == 1)
    }

    @Test("a client that speaks before the greeting is refused with 554 5.5.0")
    func pregreet() {
        var machine = SMTPServerStateMachine(settings: .init(hostname: "mx.example.jp"))
        guard case .send(let replies, true) = machine.spokeBeforeGreeting() else {
            Issue.record("no closing reply")
            return
        }
        #expect(replies.map(\.description) == ["554 5.5.0 mx.example.jp Error: client sent data before the greeting"])
        #expect(machine.isClosed)
    }

    @Test("strict envelopes take only FROM:<path>; lenient ones take spaces and bare addresses", arguments: [
        ("MAIL FROM:<a@example.org>", true, true),
        ("MAIL FROM:<a@example.org> SIZE=10", true, true),
        ("MAIL FROM: <a@example.org>", false, true),
        ("MAIL FROM :<a@example.org>", false, true),
        ("MAIL FROM:a@example.org", false, true),
        ("MAIL FROM:<a@example.org>SIZE=10", false, true),
        ("MAIL FROM:<>", true, true),
    ])
    func envelopeSyntax(line: String, strictOK: Bool, lenientOK: Bool) {
        for strict in [true, false] {
            var settings = SMTPServerStateMachine.Settings(hostname: "mx.example.jp")
            settings.strictEnvelopes = strict
            var session = SessionDriver(settings: settings)
            session.feed("EHLO c\r\n" + line + "\r\n")
            let accepted = session.replies.last == "250 2.1.0 Ok"
            #expect(accepted == (strict ? strictOK : lenientOK), "\(line) strict=\(strict): \(session.replies.last ?? "")")
        }
    }
}
