import Testing
@testable import MailCore

/// pickup's notice for a message the sendmail command submitted that never
/// reached the queue: a failure report about a maildrop file.
@Suite("Reports returning a local submission")
struct LocalSubmissionReportTests {
    typealias DSN = DeliveryStatusNotification

    static func report(recipients: [String] = ["bob@host.example", "x@example.org"], sizeLimit: Int = 0,
                       status: EnhancedStatusCode = EnhancedStatusCode(5, 4, 6),
                       diagnostic: String = "554 5.4.6 Error: too many hops") -> DSN {
        DSN(kind: .failure, hostname: "host.example", original: .localSubmission(file: "F", diagnostic: diagnostic),
            reportRecipient: "jun@host.example", arrivalDate: "Sun, 29 Nov 2026 11:00:00 +0000",
            date: "Sun, 29 Nov 2026 12:00:00 +0000", messageID: "<20261129120000.F@host.example>",
            boundary: "F.1/host.example",
            recipients: recipients.map {
                DSN.Recipient(finalRecipient: $0, action: .failed, status: status, diagnostic: .local(diagnostic))
            },
            sizeLimit: sizeLimit)
    }

    static func text(_ report: DSN, _ content: [UInt8]?) -> String {
        String(decoding: report.message(original: content), as: UTF8.self)
    }

    @Test("a report per recipient, the submitter's wording, the maildrop file, the message attached whole")
    func whole() {
        let text = Self.text(Self.report(), Array("Subject: hi\n\nbody\n".utf8))
        // The framing is the generator's, tested with qmgr's reports.
        #expect(text.hasPrefix("From: MAILER-DAEMON@host.example (Mail Delivery System)\nTo: jun@host.example\n"
                               + "Subject: Undelivered Mail Returned to Sender\n"))
        #expect(text.contains("\tboundary=\"F.1/host.example\"\n"))
        #expect(text.hasSuffix("""
        --F.1/host.example
        Content-Description: Notification
        Content-Type: text/plain; charset=us-ascii

        This is the mail system at host host.example.

        I'm sorry to have to inform you that the message you submitted with the
        sendmail command on Sun, 29 Nov 2026 11:00:00 +0000 could not be queued,
        and was not delivered to any of its recipients.

        The mail system said: 554 5.4.6 Error: too many hops

        The recipients were:
        <bob@host.example>
        <x@example.org>

        The message is attached below.

        For further assistance, please send mail to postmaster.

                           The mail system

        --F.1/host.example
        Content-Description: Delivery report
        Content-Type: message/delivery-status

        Reporting-MTA: dns; host.example
        Arrival-Date: Sun, 29 Nov 2026 11:00:00 +0000
        X-Hikyaku-Maildrop-File: F

        Final-Recipient: rfc822; bob@host.example
        Action: failed
        Status: 5.4.6
        Diagnostic-Code: X-Hikyaku; 554 5.4.6 Error: too many hops

        Final-Recipient: rfc822; x@example.org
        Action: failed
        Status: 5.4.6
        Diagnostic-Code: X-Hikyaku; 554 5.4.6 Error: too many hops

        --F.1/host.example
        Content-Description: Undelivered Message
        Content-Type: message/rfc822

        Subject: hi

        body

        --F.1/host.example--

        """))
    }

    @Test("too big to return whole: the header section only, as text/rfc822-headers, under the limit")
    func headersOnly() {
        let content = Array(("Subject: big\nX-A: 1\n\n" + String(repeating: "z", count: 100_000)).utf8)
        let message = Self.report(sizeLimit: 70_000, status: EnhancedStatusCode(5, 3, 4),
                                  diagnostic: "552 5.3.4 Error: message file too big").message(original: content)
        let text = String(decoding: message, as: UTF8.self)
        #expect(text.contains("The message is too large to return whole; its header section is attached below.\n"))
        #expect(text.hasSuffix("Content-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n\n"
                               + "Subject: big\nX-A: 1\n\n--F.1/host.example--\n"))
        #expect(message.count <= 70_000)
    }

    @Test("the message goes back whole exactly when the whole report fits under the limit")
    func limitBoundary() {
        let content = Array(("Subject: hi\n\n" + String(repeating: "body\n", count: 100)).utf8)
        let whole = Self.report().message(original: content).count
        #expect(Self.text(Self.report(sizeLimit: whole), content).contains("Content-Type: message/rfc822\n"))
        let smaller = Self.text(Self.report(sizeLimit: whole - 1), content)
        #expect(smaller.contains("Content-Type: text/rfc822-headers\n\nSubject: hi\n\n--F.1/host.example--\n"))
    }

    @Test("a header section too big to fit: nothing attached, the file named for the postmaster")
    func nothingFits() {
        let content = Array(("Subject: big\n" + String(repeating: "X-Long: \(String(repeating: "y", count: 900))\n", count: 100)
                             + "\nbody\n").utf8)
        let message = Self.report(sizeLimit: 20_000).message(original: content)
        let text = String(decoding: message, as: UTF8.self)
        #expect(message.count <= 20_000)
        #expect(text.contains("The message is too large to return; the postmaster has it as F.\n"))
        #expect(text.hasSuffix("Diagnostic-Code: X-Hikyaku; 554 5.4.6 Error: too many hops\n\n--F.1/host.example--\n"))
        #expect(!text.contains("Subject: big") && !text.contains("rfc822-headers"))
    }

    @Test("a transient status is reported with class 5; no file contents: a plain text notice")
    func unreadable() {
        let text = Self.text(Self.report(recipients: [], status: EnhancedStatusCode(4, 3, 0),
                                         diagnostic: "the message could not be queued within 5 days: cannot read it"), nil)
        #expect(text.contains("MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\n"
                              + "This is the mail system at host host.example.\n"))
        #expect(text.contains("The mail system said: the message could not be queued within 5 days: cannot read it\n\n"
                              + "The message file could not be read; the postmaster has it as F.\n"))
        #expect(!text.contains("multipart") && !text.contains("The recipients were"))
        #expect(text.hasSuffix("                   The mail system\n"))
        let withRecipients = Self.text(Self.report(status: EnhancedStatusCode(4, 3, 0), diagnostic: "d"), Array("x\n".utf8))
        #expect(withRecipients.contains("Status: 5.3.0\n"))
    }
}
