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
/// headers only, as Postfix's do.
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

    public var kind: Kind
    /// `myhostname`: `Reporting-MTA: dns; HOST` and the From: domain.
    public var hostname: String
    /// The original message's queue ID: `X-Hikyaku-Queue-ID`.
    public var queueID: String
    /// The original envelope sender (empty for the null sender).
    public var sender: String
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

    public init(kind: Kind, hostname: String, queueID: String, sender: String, reportRecipient: String,
                isPostmasterCopy: Bool = false, envelopeID: String? = nil, returnContent: DSNReturn = .full,
                arrivalDate: String, date: String, messageID: String, boundary: String, recipients: [Recipient],
                delayWarning: DelayWarning? = nil) {
        self.kind = kind
        self.hostname = hostname
        self.queueID = queueID
        self.sender = sender
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

    var partDescription: String {
        switch (kind, returnedPart) {
        case (.failure, .full): return "Undelivered Message"
        case (.failure, .headers), (.delay, _): return "Undelivered Message Headers"
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
        out += "X-Hikyaku-Queue-ID: \(Self.printable(queueID))\n"
        out += "X-Hikyaku-Sender: rfc822; \(Self.printable(sender))\n"
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
    /// queued message's content.
    public func message(original: [UInt8]) -> [UInt8] {
        var returned = returnedPart == .full ? original : Self.headerSection(of: original)
        if let last = returned.last, last != 10 { returned.append(10) }
        let boundary = Self.unusedBoundary(boundary, in: returned)
        let eightBit = returned.contains(where: { $0 >= 0x80 })

        var head = ""
        head += "From: MAILER-DAEMON@\(Self.printable(hostname)) (Mail Delivery System)\n"
        head += "To: \(Self.printable(reportRecipient))\n"
        head += "Subject: \(subject)\n"
        head += "Date: \(date)\n"
        head += "Message-ID: \(messageID)\n"
        head += "Auto-Submitted: auto-replied\n"
        head += "MIME-Version: 1.0\n"
        head += "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"\(boundary)\"\n"
        head += "Content-Transfer-Encoding: \(eightBit ? "8bit" : "7bit")\n"
        head += "\n"
        head += "This is a MIME-encapsulated message.\n\n"
        head += "--\(boundary)\n"
        head += "Content-Description: Notification\n"
        head += "Content-Type: text/plain; charset=us-ascii\n\n"
        for line in introduction { head += line + "\n" }
        for recipient in recipients { head += Self.summaryLine(recipient) + "\n" }
        head += "\n"
        head += "--\(boundary)\n"
        head += "Content-Description: Delivery report\n"
        head += "Content-Type: message/delivery-status\n\n"
        head += deliveryStatus
        head += "\n"
        head += "--\(boundary)\n"
        head += "Content-Description: \(partDescription)\n"
        head += "Content-Type: \(returnedPart == .full ? "message/rfc822" : "text/rfc822-headers")\n"
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
