/// Builds a non-delivery report (RFC 3464, RFC 6522 multipart/report) in
/// Postfix's layout: a human-readable part, the machine-readable
/// message/delivery-status part, and the original message.
public struct DeliveryStatusNotification: Sendable {
    public struct Failure: Sendable {
        public var recipient: String
        public var originalRecipient: String
        public var status: EnhancedStatusCode
        public var diagnostic: String

        public init(recipient: String, originalRecipient: String = "", status: EnhancedStatusCode, diagnostic: String) {
            self.recipient = recipient
            self.originalRecipient = originalRecipient
            self.status = status
            self.diagnostic = diagnostic
        }
    }

    public var hostname: String
    public var queueID: String
    public var recipient: String
    public var arrivalDate: String
    public var date: String
    public var messageID: String
    public var boundary: String
    public var failures: [Failure]
    /// Notice sent to the postmaster about a bounce that could not be returned.
    public var isDoubleBounce: Bool

    public init(hostname: String, queueID: String, recipient: String, arrivalDate: String, date: String,
                messageID: String, boundary: String, failures: [Failure], isDoubleBounce: Bool) {
        self.hostname = hostname
        self.queueID = queueID
        self.recipient = recipient
        self.arrivalDate = arrivalDate
        self.date = date
        self.messageID = messageID
        self.boundary = boundary
        self.failures = failures
        self.isDoubleBounce = isDoubleBounce
    }

    /// Everything up to the original message (LF line endings); the caller
    /// appends the original content and then ``trailer``.
    public var head: String {
        var out = ""
        out += "From: MAILER-DAEMON@\(hostname) (Mail Delivery System)\n"
        out += "To: \(recipient)\n"
        out += "Subject: \(isDoubleBounce ? "Postmaster Copy: Undelivered Mail" : "Undelivered Mail Returned to Sender")\n"
        out += "Date: \(date)\n"
        out += "Message-ID: \(messageID)\n"
        out += "Auto-Submitted: auto-replied\n"
        out += "MIME-Version: 1.0\n"
        out += "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"\(boundary)\"\n"
        out += "Content-Transfer-Encoding: 8bit\n"
        out += "\n"
        out += "This is a MIME-encapsulated message.\n\n"
        out += "--\(boundary)\n"
        out += "Content-Description: Notification\n"
        out += "Content-Type: text/plain; charset=us-ascii\n\n"
        out += "This is the mail system at host \(hostname).\n\n"
        out += "I'm sorry to have to inform you that your message could not\n"
        out += "be delivered to one or more recipients. It's attached below.\n\n"
        out += "For further assistance, please send mail to postmaster.\n\n"
        out += "                   The mail system\n\n"
        for failure in failures {
            out += "<\(failure.recipient)>: \(failure.diagnostic)\n"
        }
        out += "\n"
        out += "--\(boundary)\n"
        out += "Content-Description: Delivery report\n"
        out += "Content-Type: message/delivery-status\n\n"
        out += "Reporting-MTA: dns; \(hostname)\n"
        out += "X-Hikyaku-Queue-ID: \(queueID)\n"
        out += "Arrival-Date: \(arrivalDate)\n"
        for failure in failures {
            out += "\n"
            out += "Final-Recipient: rfc822; \(failure.recipient)\n"
            if !failure.originalRecipient.isEmpty {
                out += "Original-Recipient: rfc822; \(failure.originalRecipient)\n"
            }
            out += "Action: failed\n"
            out += "Status: \(failure.status)\n"
            out += "Diagnostic-Code: X-Hikyaku; \(failure.diagnostic)\n"
        }
        out += "\n"
        out += "--\(boundary)\n"
        out += "Content-Description: Undelivered Message\n"
        out += "Content-Type: message/rfc822\n"
        out += "Content-Transfer-Encoding: 8bit\n\n"
        return out
    }

    /// Closes the MIME structure after the original content.
    public var trailer: String { "\n--\(boundary)--\n" }
}
