/// The notice that returns a locally submitted message (the sendmail
/// command's) to the user who submitted it, when pickup has taken it from
/// maildrop/ but the queue will not have it: cleanup refused it for good
/// (too big, too many hops), or it could not be queued for
/// `maximal_queue_lifetime`. At that point the command has long exited 0, so
/// mail is the only way left to tell anyone. Postfix's cleanup bounces such
/// a message to its sender; hikyaku returns it to the submitting user's own
/// address (pickup knows who that is from the file's owner), which is who
/// ran the command and who can do something about it.
///
/// The layout is a non-delivery report's (RFC 3464, RFC 6522), like qmgr's:
/// a text part, a `message/delivery-status` part with one block per
/// recipient, and the message itself as `message/rfc822`, or only its header
/// section as `text/rfc822-headers` when the whole would make the notice too
/// big to queue (Postfix's rule for returned messages too). When the file
/// could not even be read, nothing of it is known, and the notice is a
/// single text part.
public struct LocalSubmissionNotice: Sendable {
    public enum Attachment: Equatable, Sendable {
        case message
        case headers
        case none
    }

    public var hostname: String
    /// Where the notice goes (`To:`).
    public var recipient: String
    public var date: String
    public var messageID: String
    public var boundary: String
    /// The maildrop file's name, for the postmaster.
    public var fileName: String
    /// When the message was submitted (the file's modification time).
    public var submittedDate: String
    /// The message's recipients, as pickup would have queued them (empty when
    /// the file could not be read).
    public var recipients: [String]
    /// The status for the report: a permanent code (a transient one is given
    /// class 5, since the notice ends the attempt).
    public var status: EnhancedStatusCode
    /// What went wrong, as one line: cleanup's reply, or why the file waited.
    public var diagnostic: String
    /// The message (LF line endings), nil when the file could not be read.
    public var content: [UInt8]?
    /// `message_size_limit`: the notice must fit under it (0: no limit).
    public var sizeLimit: Int

    public init(hostname: String, recipient: String, date: String, messageID: String, boundary: String,
                fileName: String, submittedDate: String, recipients: [String], status: EnhancedStatusCode,
                diagnostic: String, content: [UInt8]?, sizeLimit: Int) {
        self.hostname = hostname
        self.recipient = recipient
        self.date = date
        self.messageID = messageID
        self.boundary = boundary
        self.fileName = fileName
        self.submittedDate = submittedDate
        self.recipients = recipients
        self.status = status
        self.diagnostic = diagnostic
        self.content = content
        self.sizeLimit = sizeLimit
    }

    /// Room kept for everything but the returned message.
    public static let overhead = 64 * 1024
    /// At most this much of a header section is returned.
    public static let maximumHeaderSection = 64 * 1024

    /// Whether the message goes back whole, as its header section only, or
    /// not at all.
    public var attachment: Attachment {
        guard let content else { return .none }
        if sizeLimit == 0 || content.count + Self.overhead + recipients.reduce(0, { $0 + 2 * $1.utf8.count + 80 }) <= sizeLimit {
            return .message
        }
        return .headers
    }

    var reportStatus: EnhancedStatusCode {
        status.isPermanent ? status : EnhancedStatusCode(5, status.subject, status.detail)
    }

    /// The header section of `content`, up to and including the empty line
    /// that ends it (one is added if the message has none), cut at
    /// ``maximumHeaderSection`` on a line boundary.
    static func headerSection(of content: [UInt8]) -> [UInt8] {
        var end = 0
        var i = 0
        while i < content.count {
            var j = i
            while j < content.count && content[j] != 10 { j += 1 }
            if j == i { break }                       // the empty line
            let next = min(content.count, j + 1)
            if next > maximumHeaderSection { break }
            end = next
            i = next
        }
        var out = Array(content[..<end])
        if out.last != 10 && !out.isEmpty { out.append(10) }
        out.append(10)
        return out
    }

    /// The whole notice, LF line endings, ready for cleanup.
    public func render() -> [UInt8] {
        var head = ""
        head += "From: MAILER-DAEMON@\(hostname) (Mail Delivery System)\n"
        head += "To: \(recipient)\n"
        head += "Subject: Undelivered Mail Returned to Sender\n"
        head += "Date: \(date)\n"
        head += "Message-ID: \(messageID)\n"
        head += "Auto-Submitted: auto-replied\n"
        head += "MIME-Version: 1.0\n"
        var explanation = "This is the mail system at host \(hostname).\n\n"
        explanation += "I'm sorry to have to inform you that the message you submitted with the\n"
        explanation += "sendmail command on \(submittedDate) could not be queued,\n"
        explanation += "and was not delivered to any of its recipients.\n\n"
        explanation += "The mail system said: \(diagnostic)\n\n"
        if !recipients.isEmpty {
            explanation += "The recipients were:\n"
            for r in recipients { explanation += "<\(r)>\n" }
            explanation += "\n"
        }
        switch attachment {
        case .message: explanation += "The message is attached below.\n\n"
        case .headers: explanation += "The message is too large to return whole; its header section is attached below.\n\n"
        case .none: explanation += "The message file could not be read; the postmaster has it as \(fileName).\n\n"
        }
        explanation += "For further assistance, please send mail to postmaster.\n\n"
        explanation += "                   The mail system\n"

        guard !recipients.isEmpty else {
            // Nothing per recipient to report: a plain notice.
            head += "Content-Type: text/plain; charset=us-ascii\n"
            head += "Content-Transfer-Encoding: 8bit\n\n"
            return Array((head + explanation).utf8)
        }
        head += "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"\(boundary)\"\n"
        head += "Content-Transfer-Encoding: 8bit\n\n"
        head += "This is a MIME-encapsulated message.\n\n"
        head += "--\(boundary)\n"
        head += "Content-Description: Notification\n"
        head += "Content-Type: text/plain; charset=us-ascii\n\n"
        head += explanation + "\n"
        head += "--\(boundary)\n"
        head += "Content-Description: Delivery report\n"
        head += "Content-Type: message/delivery-status\n\n"
        head += "Reporting-MTA: dns; \(hostname)\n"
        head += "X-Hikyaku-Maildrop-File: \(fileName)\n"
        head += "Arrival-Date: \(submittedDate)\n"
        for r in recipients {
            head += "\nFinal-Recipient: rfc822; \(r)\n"
            head += "Action: failed\n"
            head += "Status: \(reportStatus)\n"
            head += "Diagnostic-Code: X-Hikyaku; \(diagnostic)\n"
        }
        var out = Array(head.utf8)
        let attached: [UInt8]
        switch attachment {
        case .message:
            out += Array("\n--\(boundary)\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n".utf8)
            attached = content ?? []
        case .headers:
            out += Array("\n--\(boundary)\nContent-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\nContent-Transfer-Encoding: 8bit\n\n".utf8)
            attached = Self.headerSection(of: content ?? [])
        case .none:
            attached = []
        }
        out += attached
        if !attached.isEmpty && attached.last != 10 { out.append(10) }
        out += Array("\n--\(boundary)--\n".utf8)
        return out
    }
}
