/// Builds a delivery status notification: an RFC 6522 multipart/report with
/// an RFC 3464 message/delivery-status part, in Postfix's layout and wording.
///
///     multipart/report; report-type=delivery-status
///       text/plain                  what happened, for people
///       message/delivery-status     the same, for programs
///       message/rfc822              the original message (failure, RET=FULL)
///       | text/rfc822-headers       or only its header section
///
/// One report covers one event of one message: every recipient that failed,
/// was delayed, or was delivered at that moment. Which recipients belong in
/// it (their NOTIFY, RFC 3461) is the caller's decision; ``DSNNotify/wants(_:)``
/// says it. Failure reports carry the whole message unless the sender asked
/// for headers only (RET=HDRS); delay warnings and success reports carry the
/// headers only, as Postfix's do. Under a ``sizeLimit`` the returned part
/// shrinks until the report fits: the whole message, else its header
/// section, else nothing.
///
/// The original is usually a queued message (qmgr's reports). It can also
/// be one the sendmail command submitted that never reached the queue
/// (pickup's, ``Original/localSubmission(file:diagnostic:)``): then the text
/// part tells the submitter so in words of its own, and a report that knows
/// no recipients (the file could not be read) is that text part alone.
///
/// Everything that reaches the report from outside (addresses, diagnostic
/// texts from remote servers, ENVID, ORCPT) is reduced to printable US-ASCII,
/// so nothing can start a header field or a MIME part of its own, and long
/// fields are folded.
public struct DeliveryStatusNotification: Sendable {
    /// The three kinds of report (RFC 3461 NOTIFY's three conditions).
    public enum Kind: Sendable, Hashable {
        /// Delivery failed for good: `Action: failed`.
        case failure
        /// Still being retried: `Action: delayed`.
        case delay
        /// Delivered, relayed to a peer without DSN, or expanded.
        case success
    }

    /// RFC 3464 section 2.3.3.
    public enum Action: String, Sendable, Hashable {
        case failed
        case delayed
        /// Final delivery: a mailbox, a file, a command.
        case delivered
        /// Handed to a host that does not support DSN, so no further report
        /// will come from there.
        case relayed
        /// An alias or .forward expanded to other recipients, which carry on
        /// without SUCCESS.
        case expanded

        /// The kind of report this action belongs in.
        public var kind: Kind {
            switch self {
            case .failed: return .failure
            case .delayed: return .delay
            case .delivered, .relayed, .expanded: return .success
            }
        }
    }

    /// Where a recipient's status came from (RFC 3464 section 2.3.6).
    public enum Diagnostic: Sendable, Hashable {
        /// A remote SMTP server's reply: `Diagnostic-Code: smtp; 550 5.1.1 ...`.
        case smtp(SMTPReply)
        /// This host's own finding: `Diagnostic-Code: X-Hikyaku; text`.
        case local(String)

        public var text: String {
            switch self {
            case .smtp(let reply): return reply.description
            case .local(let text): return text
            }
        }
    }

    /// One recipient of the event.
    public struct Recipient: Sendable, Hashable {
        /// The recipient as queued: `Final-Recipient: rfc822; ADDRESS`.
        public var finalRecipient: String
        /// The address this one was expanded from on this host (an alias),
        /// named in the text part; nil when it was not.
        public var expandedFrom: String?
        /// The sender's ORCPT: `Original-Recipient`, only when given (RFC 3464
        /// section 2.3.1).
        public var originalRecipient: OriginalRecipient?
        public var action: Action
        /// Its class is made to match the action: 5 for failed, 4 for delayed,
        /// 2 otherwise (an expired 4.4.7 is reported as 5.4.7).
        public var status: EnhancedStatusCode
        /// The remote server that answered: `Remote-MTA: dns; HOST`.
        public var remoteMTA: String?
        public var diagnostic: Diagnostic
        /// `Last-Attempt-Date`, RFC 5322 date-time; nil leaves it out.
        public var lastAttemptDate: String?

        public init(finalRecipient: String, expandedFrom: String? = nil, originalRecipient: OriginalRecipient? = nil,
                    action: Action, status: EnhancedStatusCode, remoteMTA: String? = nil, diagnostic: Diagnostic,
                    lastAttemptDate: String? = nil) {
            self.finalRecipient = finalRecipient
            self.expandedFrom = expandedFrom
            self.originalRecipient = originalRecipient
            self.action = action
            self.status = status
            self.remoteMTA = remoteMTA
            self.diagnostic = diagnostic
            self.lastAttemptDate = lastAttemptDate
        }

        /// The status with the class its action needs.
        public var reportedStatus: EnhancedStatusCode {
            let wanted: Int
            switch action {
            case .failed: wanted = 5
            case .delayed: wanted = 4
            case .delivered, .relayed, .expanded: wanted = 2
            }
            return EnhancedStatusCode(wanted, status.subject, status.detail)
        }
    }

    /// What a delay warning tells: how long the message has waited (the
    /// warning threshold) and until when it is retried.
    public struct DelayWarning: Sendable, Hashable {
        /// `delay_warning_time`, in seconds.
        public var warnedAfter: Int
        /// `maximal_queue_lifetime`, in seconds.
        public var queueLifetime: Int
        /// Arrival plus the queue lifetime, RFC 5322 date-time:
        /// `Will-Retry-Until` of each delayed recipient.
        public var willRetryUntil: String

        public init(warnedAfter: Int, queueLifetime: Int, willRetryUntil: String) {
            self.warnedAfter = warnedAfter
            self.queueLifetime = queueLifetime
            self.willRetryUntil = willRetryUntil
        }
    }

    /// What the report is about, as the delivery-status part names it for
    /// the postmaster.
    public enum Original: Sendable, Hashable {
        /// A message in the queue: `X-Hikyaku-Queue-ID: ID` and
        /// `X-Hikyaku-Sender: rfc822; SENDER` (empty for the null sender).
        case queued(id: String, sender: String)
        /// A message the sendmail command submitted that the queue would not
        /// take (pickup(8)): `X-Hikyaku-Maildrop-File: FILE`, the file kept
        /// for the postmaster. `diagnostic` is what went wrong, as one line
        /// (cleanup's reply, or why the file waited); the arrival date is
        /// when it was submitted.
        case localSubmission(file: String, diagnostic: String)
    }

    /// What of the original a report carries.
    enum Attachment: Sendable, Hashable {
        case message
        case headers
        case none
    }

    public var kind: Kind
    /// `myhostname`: `Reporting-MTA: dns; HOST` and the From: domain.
    public var hostname: String
    /// The message the report is about.
    public var original: Original
    /// Where the report goes: the sender, or the postmaster.
    public var reportRecipient: String
    /// A copy for the postmaster (mail with the null sender): its own subject.
    public var isPostmasterCopy: Bool
    /// The sender's ENVID: `Original-Envelope-Id`, only when given.
    public var envelopeID: String?
    /// The sender's RET; failure reports only.
    public var returnContent: DSNReturn
    /// RFC 5322 date-time of the original's arrival.
    public var arrivalDate: String
    /// The report's own Date: and Message-ID:.
    public var date: String
    public var messageID: String
    /// The MIME boundary; lengthened if the original happens to contain it.
    public var boundary: String
    public var recipients: [Recipient]
    /// Required for ``Kind/delay`` reports.
    public var delayWarning: DelayWarning?
    /// The largest report, in bytes, that may be made (0: no limit); the
    /// returned part shrinks to fit under it (see above).
    public var sizeLimit: Int

    public init(kind: Kind, hostname: String, original: Original, reportRecipient: String,
                isPostmasterCopy: Bool = false, envelopeID: String? = nil, returnContent: DSNReturn = .full,
                arrivalDate: String, date: String, messageID: String, boundary: String, recipients: [Recipient],
                delayWarning: DelayWarning? = nil, sizeLimit: Int = 0) {
        self.kind = kind
        self.hostname = hostname
        self.original = original
        self.reportRecipient = reportRecipient
        self.isPostmasterCopy = isPostmasterCopy
        self.envelopeID = envelopeID
        self.returnContent = returnContent
        self.arrivalDate = arrivalDate
        self.date = date
        self.messageID = messageID
        self.boundary = boundary
        self.recipients = recipients
        self.delayWarning = delayWarning
        self.sizeLimit = sizeLimit
    }

    // MARK: Wording

    public var subject: String {
        switch kind {
        case .failure: return isPostmasterCopy ? "Postmaster Copy: Undelivered Mail" : "Undelivered Mail Returned to Sender"
        case .delay: return isPostmasterCopy ? "Postmaster Warning: Delayed Mail" : "Delayed Mail (still being retried)"
        case .success: return "Successful Mail Delivery Report"
        }
    }

    /// What of the original the third part carries.
    public var returnedPart: DSNReturn { kind == .failure ? returnContent : .headers }

    /// The text part's lines, for people.
    func explanation(content: [UInt8]?, attachment: Attachment) -> [String] {
        if case .localSubmission(let file, let diagnostic) = original {
            return submissionExplanation(file: file, diagnostic: diagnostic, known: content != nil, attachment: attachment)
        }
        return introduction + recipients.map(Self.summaryLine)
    }

    var introduction: [String] {
        var lines = ["This is the mail system at host \(Self.printable(hostname)).", ""]
        switch kind {
        case .failure:
            lines += [
                "I'm sorry to have to inform you that your message could not",
                "be delivered to one or more recipients. It's attached below.",
                "",
                "For further assistance, please send mail to postmaster.",
                "",
                "If you do so, please include this problem report. You can",
                "delete your own text from the attached returned message.",
            ]
        case .delay:
            let warning = delayWarning ?? DelayWarning(warnedAfter: 0, queueLifetime: 0, willRetryUntil: "")
            lines += [
                "####################################################################",
                "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
                "####################################################################",
                "",
                "Your message could not be delivered for more than \(DurationText.describe(warning.warnedAfter)).",
                "It will be retried until it is \(DurationText.describe(warning.queueLifetime)) old.",
                "",
                "For further assistance, please send mail to postmaster.",
                "",
                "If you do so, please include this problem report. You can",
                "delete your own text from the attached returned message.",
            ]
        case .success:
            lines += [
                "Your message was successfully delivered to the destination(s)",
                "listed below. If the message was delivered to mailbox you will",
                "receive no further notifications. Otherwise you may still receive",
                "notifications of mail delivery errors from other systems.",
            ]
        }
        lines += ["", "                   The mail system", ""]
        return lines
    }

    /// The submitter's notice: the message never reached the queue, so
    /// nothing was delivered, and the mail system said one thing for all.
    func submissionExplanation(file: String, diagnostic: String, known: Bool, attachment: Attachment) -> [String] {
        var lines = [
            "This is the mail system at host \(Self.printable(hostname)).",
            "",
            "I'm sorry to have to inform you that the message you submitted with the",
            "sendmail command on \(Self.printable(arrivalDate)) could not be queued,",
            "and was not delivered to any of its recipients.",
            "",
            "The mail system said: \(Self.printable(diagnostic))",
            "",
        ]
        if !recipients.isEmpty {
            lines.append("The recipients were:")
            lines += recipients.map { "<\(Self.printable($0.finalRecipient))>" }
            lines.append("")
        }
        switch attachment {
        case .message:
            lines.append("The message is attached below.")
        case .headers:
            lines.append("The message is too large to return whole; its header section is attached below.")
        case .none where known:
            lines.append("The message is too large to return; the postmaster has it as \(Self.printable(file)).")
        case .none:
            lines.append("The message file could not be read; the postmaster has it as \(Self.printable(file)).")
        }
        lines += ["", "For further assistance, please send mail to postmaster.", "", "                   The mail system"]
        return lines
    }

    func partDescription(_ attachment: Attachment) -> String {
        switch (kind, attachment) {
        case (.failure, .message): return "Undelivered Message"
        case (.failure, _), (.delay, _): return "Undelivered Message Headers"
        case (.success, _): return "Message Headers"
        }
    }

    // MARK: The report

    /// The text part's line for one recipient:
    /// `<jun@example.jp> (expanded from <staff@example.jp>): text`.
    static func summaryLine(_ recipient: Recipient) -> String {
        var line = "<\(printable(recipient.finalRecipient))>"
        if let from = recipient.expandedFrom, from != recipient.finalRecipient {
            line += " (expanded from <\(printable(from))>)"
        }
        var text = printable(recipient.diagnostic.text)
        if let remote = recipient.remoteMTA, case .smtp = recipient.diagnostic {
            text = "host \(printable(remote)) said: " + text
        }
        return fold(line + ": " + text, indent: "    ")
    }

    /// The message/delivery-status body: per-message fields, then one block
    /// per recipient, each block after an empty line.
    public var deliveryStatus: String {
        var out = ""
        if let envelopeID { out += "Original-Envelope-Id: \(Self.printable(envelopeID))\n" }
        out += "Reporting-MTA: dns; \(Self.printable(hostname))\n"
        out += "Arrival-Date: \(Self.printable(arrivalDate))\n"
        switch original {
        case .queued(let id, let sender):
            out += "X-Hikyaku-Queue-ID: \(Self.printable(id))\n"
            out += "X-Hikyaku-Sender: rfc822; \(Self.printable(sender))\n"
        case .localSubmission(let file, _):
            out += "X-Hikyaku-Maildrop-File: \(Self.printable(file))\n"
        }
        for recipient in recipients {
            out += "\n"
            if let original = recipient.originalRecipient {
                out += Self.fold("Original-Recipient: \(Self.printable(original.description))") + "\n"
            }
            out += Self.fold("Final-Recipient: rfc822; \(Self.printable(recipient.finalRecipient))") + "\n"
            out += "Action: \(recipient.action.rawValue)\n"
            out += "Status: \(recipient.reportedStatus)\n"
            if let remote = recipient.remoteMTA { out += "Remote-MTA: dns; \(Self.printable(remote))\n" }
            switch recipient.diagnostic {
            case .smtp(let reply):
                out += Self.fold("Diagnostic-Code: smtp; \(Self.printable(reply.description))") + "\n"
            case .local(let text):
                out += Self.fold("Diagnostic-Code: X-Hikyaku; \(Self.printable(text))") + "\n"
            }
            if let date = recipient.lastAttemptDate { out += "Last-Attempt-Date: \(Self.printable(date))\n" }
            if recipient.action == .delayed, let until = delayWarning?.willRetryUntil {
                out += "Will-Retry-Until: \(Self.printable(until))\n"
            }
        }
        return out
    }

    /// The complete report message (LF line endings) around `original`, the
    /// message's content; nil when nothing of it is known (nothing is
    /// returned).
    public func message(original content: [UInt8]?) -> [UInt8] {
        guard let content else { return message(content: nil, attachment: .none) }
        var attachment: Attachment = returnedPart == .full ? .message : .headers
        while true {
            let report = message(content: content, attachment: attachment)
            if sizeLimit <= 0 || report.count <= sizeLimit || attachment == .none { return report }
            attachment = attachment == .message ? .headers : .none
        }
    }

    func message(content: [UInt8]?, attachment: Attachment) -> [UInt8] {
        var returned: [UInt8]
        switch attachment {
        case .message: returned = content ?? []
        case .headers: returned = Self.headerSection(of: content ?? [])
        case .none: returned = []
        }
        if let last = returned.last, last != 10 { returned.append(10) }
        let boundary = Self.unusedBoundary(boundary, in: returned)
        let eightBit = returned.contains(where: { $0 >= 0x80 })
        let text = explanation(content: content, attachment: attachment).map { $0 + "\n" }.joined()

        var head = ""
        head += "From: MAILER-DAEMON@\(Self.printable(hostname)) (Mail Delivery System)\n"
        head += "To: \(Self.printable(reportRecipient))\n"
        head += "Subject: \(subject)\n"
        head += "Date: \(date)\n"
        head += "Message-ID: \(messageID)\n"
        head += "Auto-Submitted: auto-replied\n"
        head += "MIME-Version: 1.0\n"
        guard !recipients.isEmpty else {
            // RFC 3464 wants a block per recipient: with none known, the
            // text is the whole report.
            head += "Content-Type: text/plain; charset=us-ascii\n"
            head += "Content-Transfer-Encoding: 7bit\n\n"
            return Array((head + text).utf8)
        }
        head += "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"\(boundary)\"\n"
        head += "Content-Transfer-Encoding: \(eightBit ? "8bit" : "7bit")\n"
        head += "\n"
        head += "This is a MIME-encapsulated message.\n\n"
        head += "--\(boundary)\n"
        head += "Content-Description: Notification\n"
        head += "Content-Type: text/plain; charset=us-ascii\n\n"
        head += text
        head += "\n"
        head += "--\(boundary)\n"
        head += "Content-Description: Delivery report\n"
        head += "Content-Type: message/delivery-status\n\n"
        head += deliveryStatus
        guard attachment != .none else { return Array((head + "\n--\(boundary)--\n").utf8) }
        head += "\n"
        head += "--\(boundary)\n"
        head += "Content-Description: \(partDescription(attachment))\n"
        head += "Content-Type: \(attachment == .message ? "message/rfc822" : "text/rfc822-headers")\n"
        if eightBit { head += "Content-Transfer-Encoding: 8bit\n" }
        head += "\n"
        return Array(head.utf8) + returned + Array("\n--\(boundary)--\n".utf8)
    }

    // MARK: Helpers

    /// The header section of a message (LF line endings): everything before
    /// the first empty line.
    public static func headerSection(of content: [UInt8]) -> [UInt8] {
        var lineStart = 0
        while lineStart < content.count {
            guard let newline = content[lineStart...].firstIndex(of: 10) else { return content }
            if newline == lineStart || (newline == lineStart + 1 && content[lineStart] == 13) {
                return Array(content[..<lineStart])
            }
            lineStart = newline + 1
        }
        return content
    }

    /// A boundary no line of `content` starts with.
    static func unusedBoundary(_ boundary: String, in content: [UInt8]) -> String {
        var candidate = boundary
        var attempt = 0
        while contains(line: Array("--\(candidate)".utf8), in: content) {
            attempt += 1
            candidate = "\(boundary).\(attempt)"
        }
        return candidate
    }

    static func contains(line prefix: [UInt8], in content: [UInt8]) -> Bool {
        var lineStart = 0
        while lineStart + prefix.count <= content.count {
            if content[lineStart..<(lineStart + prefix.count)].elementsEqual(prefix) { return true }
            guard let newline = content[lineStart...].firstIndex(of: 10) else { return false }
            lineStart = newline + 1
        }
        return false
    }

    /// Control characters become spaces and everything beyond ASCII `?`.
    static func printable(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value < 0x20 || scalar.value == 0x7F { out.append(" ") }
            else if scalar.value > 0x7E { out.append("?") }
            else { out.append(scalar) }
        }
        return String(out)
    }

    /// Folds a field at spaces so that lines stay within 78 characters where
    /// the words allow; a word longer than 900 characters is cut, so no line
    /// comes near RFC 5322's 998.
    static func fold(_ text: String, indent: String = "    ") -> String {
        var words: [Substring] = []
        for word in text.split(separator: " ") {
            var rest = word[...]
            while rest.count > 900 {
                words.append(rest.prefix(900))
                rest = rest.dropFirst(900)
            }
            words.append(rest)
        }
        var lines: [String] = []
        var current = ""
        for word in words {
            if current.isEmpty {
                current = String(word)
            } else if current.count + 1 + word.count > 78 {
                lines.append(current)
                current = indent + word
            } else {
                current += " " + word
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines.joined(separator: "\n")
    }
}
