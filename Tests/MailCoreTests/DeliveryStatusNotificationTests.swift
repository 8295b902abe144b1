import Testing
@testable import MailCore

@Suite("Delivery status notifications (RFC 3464)")
struct DeliveryStatusNotificationTests {
    typealias DSN = DeliveryStatusNotification

    static let original = Array("Received: by x\nSubject: hello\nFrom: jun@example.jp\n\nbody line\n".utf8)

    static func report(_ kind: DSN.Kind, recipients: [DSN.Recipient], ret: DSNReturn = .full, envid: String? = nil,
                       delay: DSN.DelayWarning? = nil, sender: String = "jun@example.jp") -> DSN {
        DSN(kind: kind, hostname: "mail.example.jp", original: .queued(id: "6KVKJH2662z15Xy", sender: sender),
            reportRecipient: sender.isEmpty ? "postmaster@mail.example.jp" : sender, isPostmasterCopy: sender.isEmpty,
            envelopeID: envid, returnContent: ret, arrivalDate: "Sun, 29 Nov 2026 12:00:01 +0000 (UTC)",
            date: "Sun, 29 Nov 2026 12:00:05 +0000 (UTC)", messageID: "<r@mail.example.jp>", boundary: "B.1/mail.example.jp",
            recipients: recipients, delayWarning: delay)
    }

    static func text(_ report: DSN) -> String {
        String(decoding: report.message(original: original), as: UTF8.self)
    }

    @Test("a failure report: Postfix's text, every field, the whole message")
    func failure() {
        let report = Self.report(.failure, recipients: [
            DSN.Recipient(finalRecipient: "nobody@mail.example.jp", action: .failed, status: EnhancedStatusCode(5, 1, 1),
                          diagnostic: .local("unknown user: \"nobody\""), lastAttemptDate: "Sun, 29 Nov 2026 12:00:04 +0000 (UTC)"),
            DSN.Recipient(finalRecipient: "bob@example.org",
                          originalRecipient: OriginalRecipient(addressType: "rfc822", address: "Bob@Example.org"),
                          action: .failed, status: EnhancedStatusCode(5, 1, 1), remoteMTA: "mx.example.org",
                          diagnostic: .smtp(SMTPReply(550, EnhancedStatusCode(5, 1, 1), "<bob@example.org>: Recipient address rejected"))),
        ], envid: "QQ314159")
        #expect(Self.text(report) == """
        From: MAILER-DAEMON@mail.example.jp (Mail Delivery System)
        To: jun@example.jp
        Subject: Undelivered Mail Returned to Sender
        Date: Sun, 29 Nov 2026 12:00:05 +0000 (UTC)
        Message-ID: <r@mail.example.jp>
        Auto-Submitted: auto-replied
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status;
        \tboundary="B.1/mail.example.jp"
        Content-Transfer-Encoding: 7bit

        This is a MIME-encapsulated message.

        --B.1/mail.example.jp
        Content-Description: Notification
        Content-Type: text/plain; charset=us-ascii

        This is the mail system at host mail.example.jp.

        I'm sorry to have to inform you that your message could not
        be delivered to one or more recipients. It's attached below.

        For further assistance, please send mail to postmaster.

        If you do so, please include this problem report. You can
        delete your own text from the attached returned message.

                           The mail system

        <nobody@mail.example.jp>: unknown user: "nobody"
        <bob@example.org>: host mx.example.org said: 550 5.1.1 <bob@example.org>:
            Recipient address rejected

        --B.1/mail.example.jp
        Content-Description: Delivery report
        Content-Type: message/delivery-status

        Original-Envelope-Id: QQ314159
        Reporting-MTA: dns; mail.example.jp
        Arrival-Date: Sun, 29 Nov 2026 12:00:01 +0000 (UTC)
        X-Hikyaku-Queue-ID: 6KVKJH2662z15Xy
        X-Hikyaku-Sender: rfc822; jun@example.jp

        Final-Recipient: rfc822; nobody@mail.example.jp
        Action: failed
        Status: 5.1.1
        Diagnostic-Code: X-Hikyaku; unknown user: "nobody"
        Last-Attempt-Date: Sun, 29 Nov 2026 12:00:04 +0000 (UTC)

        Original-Recipient: rfc822; Bob@Example.org
        Final-Recipient: rfc822; bob@example.org
        Action: failed
        Status: 5.1.1
        Remote-MTA: dns; mx.example.org
        Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected

        --B.1/mail.example.jp
        Content-Description: Undelivered Message
        Content-Type: message/rfc822

        Received: by x
        Subject: hello
        From: jun@example.jp

        body line

        --B.1/mail.example.jp--

        """)
    }

    @Test("RET=HDRS returns the header section only, as text/rfc822-headers")
    func headersOnly() {
        let text = Self.text(Self.report(.failure, recipients: [
            DSN.Recipient(finalRecipient: "a@x", action: .failed, status: EnhancedStatusCode(5, 0, 0), diagnostic: .local("no")),
        ], ret: .headers))
        #expect(text.hasSuffix("""
        Content-Description: Undelivered Message Headers
        Content-Type: text/rfc822-headers

        Received: by x
        Subject: hello
        From: jun@example.jp

        --B.1/mail.example.jp--

        """))
        #expect(!text.contains("body line"))
    }

    @Test("a delay warning: its subject, its text, Will-Retry-Until, headers only")
    func delay() {
        let report = Self.report(.delay, recipients: [
            DSN.Recipient(finalRecipient: "a@example.org", action: .delayed, status: EnhancedStatusCode(4, 4, 1),
                          diagnostic: .local("connect to example.org: Connection timed out")),
        ], delay: DSN.DelayWarning(warnedAfter: 4 * 3600, queueLifetime: 5 * 86400, willRetryUntil: "Fri, 4 Dec 2026 12:00:01 +0000 (UTC)"))
        let text = Self.text(report)
        #expect(text.contains("Subject: Delayed Mail (still being retried)\n"))
        #expect(text.contains("# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"))
        #expect(text.contains("Your message could not be delivered for more than 4 hours.\nIt will be retried until it is 5 days old.\n"))
        #expect(text.contains("Action: delayed\nStatus: 4.4.1\nDiagnostic-Code: X-Hikyaku; connect to example.org: Connection timed out\nWill-Retry-Until: Fri, 4 Dec 2026 12:00:01 +0000 (UTC)\n"))
        #expect(text.contains("Content-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n"))
        #expect(!text.contains("body line"))
    }

    @Test("a success report: delivered, relayed and expanded, headers only")
    func success() {
        let report = Self.report(.success, recipients: [
            DSN.Recipient(finalRecipient: "jun@mail.example.jp", action: .delivered, status: EnhancedStatusCode(2, 0, 0),
                          diagnostic: .local("delivered to mailbox")),
            DSN.Recipient(finalRecipient: "staff@mail.example.jp", action: .expanded, status: EnhancedStatusCode(2, 0, 0),
                          diagnostic: .local("alias expanded")),
            DSN.Recipient(finalRecipient: "old@example.org", action: .relayed, status: EnhancedStatusCode(2, 0, 0),
                          remoteMTA: "mx.example.org", diagnostic: .smtp(SMTPReply(250, EnhancedStatusCode(2, 0, 0), "Ok: queued as 1234"))),
        ])
        let text = Self.text(report)
        #expect(text.contains("Subject: Successful Mail Delivery Report\n"))
        #expect(text.contains("Your message was successfully delivered to the destination(s)\nlisted below."))
        #expect(text.contains("Final-Recipient: rfc822; jun@mail.example.jp\nAction: delivered\nStatus: 2.0.0\n"))
        #expect(text.contains("Final-Recipient: rfc822; staff@mail.example.jp\nAction: expanded\nStatus: 2.0.0\n"))
        #expect(text.contains("Action: relayed\nStatus: 2.0.0\nRemote-MTA: dns; mx.example.org\nDiagnostic-Code: smtp; 250 2.0.0 Ok: queued as 1234\n"))
        #expect(text.contains("Content-Description: Message Headers\nContent-Type: text/rfc822-headers\n"))
        #expect(!text.contains("Original-Envelope-Id"))
    }

    @Test("the status class follows the action: an expired 4.4.7 fails as 5.4.7")
    func statusClass() {
        let recipient = DSN.Recipient(finalRecipient: "a@x", action: .failed, status: EnhancedStatusCode(4, 4, 7), diagnostic: .local("expired"))
        #expect(recipient.reportedStatus == EnhancedStatusCode(5, 4, 7))
        #expect(Self.text(Self.report(.failure, recipients: [recipient])).contains("Status: 5.4.7\n"))
    }

    @Test("the null sender's failure goes to the postmaster under its own subject")
    func postmasterCopy() {
        let text = Self.text(Self.report(.failure, recipients: [
            DSN.Recipient(finalRecipient: "a@x", action: .failed, status: EnhancedStatusCode(5, 0, 0), diagnostic: .local("no")),
        ], sender: ""))
        #expect(text.contains("To: postmaster@mail.example.jp\nSubject: Postmaster Copy: Undelivered Mail\n"))
        #expect(text.contains("X-Hikyaku-Sender: rfc822; \n"))
    }

    @Test("hostile text cannot add lines or parts; long diagnostics are folded")
    func hostileText() {
        let evil = "5.1.1 nope\r\nContent-Type: text/html\r\n\r\n--B.1/mail.example.jp\u{7F}\u{E9}"
        let report = Self.report(.failure, recipients: [
            DSN.Recipient(finalRecipient: "a\nInjected: yes@x", originalRecipient: OriginalRecipient(addressType: "rfc822", address: "ok@x"),
                          action: .failed, status: EnhancedStatusCode(5, 1, 1), remoteMTA: "mx\r\nX: y",
                          diagnostic: .smtp(SMTPReply(550, nil, lines: [evil, String(repeating: "w", count: 2000)]))),
        ], envid: "id")
        let text = Self.text(report)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(!lines.contains(where: { $0.hasPrefix("Injected:") || $0.hasPrefix("X: y") || $0.hasPrefix("Content-Type: text/html") }))
        #expect(lines.filter { $0 == "--B.1/mail.example.jp" }.count == 3)
        #expect(lines.allSatisfy { $0.utf8.count <= 998 })
        #expect(text.utf8.allSatisfy { $0 == 10 || $0 == 9 || ($0 >= 0x20 && $0 < 0x7F) })
        #expect(text.contains("Final-Recipient: rfc822; a Injected: yes@x\n"))
    }

    @Test("a boundary the original contains is lengthened")
    func boundaryClash() {
        let original = Array("Subject: x\n\n--B.1/mail.example.jp\n".utf8)
        let report = Self.report(.failure, recipients: [
            DSN.Recipient(finalRecipient: "a@x", action: .failed, status: EnhancedStatusCode(5, 0, 0), diagnostic: .local("no")),
        ])
        let text = String(decoding: report.message(original: original), as: UTF8.self)
        #expect(text.contains("boundary=\"B.1/mail.example.jp.1\""))
        #expect(text.hasSuffix("\n--B.1/mail.example.jp.1--\n"))
    }

    @Test("8-bit content is declared; a message without a blank line is all header")
    func eightBit() {
        let original = Array("Subject: caf\u{E9}\nX: y".utf8)
        let report = Self.report(.failure, recipients: [
            DSN.Recipient(finalRecipient: "a@x", action: .failed, status: EnhancedStatusCode(5, 0, 0), diagnostic: .local("no")),
        ], ret: .headers)
        let text = String(decoding: report.message(original: original), as: UTF8.self)
        #expect(text.contains("Content-Transfer-Encoding: 8bit\n\nThis is a MIME"))
        #expect(text.contains("Content-Type: text/rfc822-headers\nContent-Transfer-Encoding: 8bit\n\nSubject: caf\u{E9}\nX: y\n\n--B.1"))
        #expect(DSN.headerSection(of: Array("A: b\r\n\r\nbody".utf8)) == Array("A: b\r\n".utf8))
    }
}
