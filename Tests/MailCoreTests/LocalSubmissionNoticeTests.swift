import Testing
@testable import MailCore

@Suite("Retries of files that cannot be queued yet")
struct RetryTrackerTests {
    @Test("the wait doubles from the first delay up to the maximum")
    func backoff() {
        let tracker = RetryTracker<String>(firstDelay: 5, maximumDelay: 300)
        #expect((1...9).map { tracker.delay(afterAttempts: $0) } == [5, 10, 20, 40, 80, 160, 300, 300, 300])
    }

    @Test("a failure is news the first time and when its reason changes; the item is due again after the wait")
    func news() {
        var tracker = RetryTracker<String>(firstDelay: 5, maximumDelay: 300)
        #expect(tracker.isDue("f", now: 0))
        let first = tracker.failed("f", reason: "cleanup down", now: 100)
        #expect(first.isNews && first.entry.attempts == 1 && first.entry.nextTry == 105)
        #expect(!tracker.isDue("f", now: 104) && tracker.isDue("f", now: 105))
        let second = tracker.failed("f", reason: "cleanup down", now: 105)
        #expect(!second.isNews && second.entry.nextTry == 115)
        #expect(tracker.failed("f", reason: "451 4.3.0 later", now: 115).isNews)
        #expect(tracker.forget("f")?.attempts == 3)
        #expect(tracker.failed("f", reason: "451 4.3.0 later", now: 200).isNews)
        tracker.failed("g", reason: "x", now: 0)
        tracker.keepOnly(["g"])
        #expect(tracker.entries.keys.sorted() == ["g"])
    }
}

@Suite("The notice returning a local submission")
struct LocalSubmissionNoticeTests {
    func notice(content: [UInt8]?, recipients: [String] = ["bob@host.example", "x@example.org"], sizeLimit: Int = 0,
                status: EnhancedStatusCode = EnhancedStatusCode(5, 4, 6),
                diagnostic: String = "554 5.4.6 Error: too many hops") -> String {
        let notice = LocalSubmissionNotice(
            hostname: "host.example", recipient: "jun@host.example", date: "Sun, 29 Nov 2026 12:00:00 +0000",
            messageID: "<20261129120000.F@host.example>", boundary: "F.1/host.example", fileName: "F",
            submittedDate: "Sun, 29 Nov 2026 11:00:00 +0000", recipients: recipients, status: status,
            diagnostic: diagnostic, content: content, sizeLimit: sizeLimit)
        return String(decoding: notice.render(), as: UTF8.self)
    }

    @Test("a report per recipient and the message attached whole")
    func whole() {
        let text = notice(content: Array("Subject: hi\n\nbody\n".utf8))
        #expect(text.hasPrefix("From: MAILER-DAEMON@host.example (Mail Delivery System)\nTo: jun@host.example\n"
                               + "Subject: Undelivered Mail Returned to Sender\n"))
        #expect(text.contains("Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"F.1/host.example\"\n"))
        #expect(text.contains("The mail system said: 554 5.4.6 Error: too many hops\n\nThe recipients were:\n<bob@host.example>\n<x@example.org>\n"))
        #expect(text.contains("Final-Recipient: rfc822; x@example.org\nAction: failed\nStatus: 5.4.6\n"
                              + "Diagnostic-Code: X-Hikyaku; 554 5.4.6 Error: too many hops\n"))
        #expect(text.hasSuffix("Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\nSubject: hi\n\nbody\n\n--F.1/host.example--\n"))
    }

    @Test("too big to return whole: the header section only, as text/rfc822-headers")
    func headersOnly() {
        let content = Array(("Subject: big\nX-A: 1\n\n" + String(repeating: "z", count: 100_000)).utf8)
        let text = notice(content: content, sizeLimit: 70_000, status: EnhancedStatusCode(5, 3, 4),
                          diagnostic: "552 5.3.4 Error: message file too big")
        #expect(text.hasSuffix("Content-Type: text/rfc822-headers\nContent-Transfer-Encoding: 8bit\n\nSubject: big\nX-A: 1\n\n\n--F.1/host.example--\n"))
        #expect(text.utf8.count < 70_000)
    }

    @Test("a transient status is reported with class 5; no file contents: a plain text notice")
    func unreadable() {
        let text = notice(content: nil, recipients: [], status: EnhancedStatusCode(4, 3, 0),
                          diagnostic: "the message could not be queued within 5 days: cannot read it")
        #expect(text.contains("Content-Type: text/plain; charset=us-ascii\n"))
        #expect(!text.contains("multipart") && text.contains("the postmaster has it as F."))
        let withRecipients = notice(content: Array("x\n".utf8), status: EnhancedStatusCode(4, 3, 0), diagnostic: "d")
        #expect(withRecipients.contains("Status: 5.3.0\n"))
    }

    @Test("the header section is cut at a line boundary and always ends with an empty line")
    func headerSection() {
        #expect(LocalSubmissionNotice.headerSection(of: Array("A: 1\nB: 2".utf8)) == Array("A: 1\nB: 2\n\n".utf8))
        #expect(LocalSubmissionNotice.headerSection(of: Array("A: 1\n\nbody\n".utf8)) == Array("A: 1\n\n".utf8))
        let long = Array((String(repeating: "X: \(String(repeating: "y", count: 1000))\n", count: 100)).utf8)
        #expect(LocalSubmissionNotice.headerSection(of: long).count <= LocalSubmissionNotice.maximumHeaderSection + 1)
    }
}
