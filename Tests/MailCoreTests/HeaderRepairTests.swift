import Testing
@testable import MailCore

@Suite("Adding missing headers")
struct HeaderRepairTests {
    let additions = HeaderRepair.Additions(messageID: "<id@host>", date: "Sun, 1 Nov 2026 00:00:00 +0000", from: nil)

    func repair(_ chunks: [String], additions: HeaderRepair.Additions? = nil) -> (String, HeaderRepair) {
        var repair = HeaderRepair(additions: additions ?? self.additions)
        var out: [UInt8] = []
        for chunk in chunks { repair.feed(Array(chunk.utf8), into: &out) }
        repair.finish(into: &out)
        return (String(decoding: out, as: UTF8.self), repair)
    }

    @Test("complete headers pass through untouched, whatever the chunking")
    func complete() {
        let message = "Date: x\nMessage-ID:\n <abc@example>\nSubject: s\n\nbody\nMessage-ID: not a header here\n"
        for split in 0...message.utf8.count {
            let bytes = Array(message.utf8)
            let (out, state) = repair([String(decoding: bytes[..<split], as: UTF8.self), String(decoding: bytes[split...], as: UTF8.self)])
            #expect(out == message)
            #expect(state.messageID == "<abc@example>")
        }
    }

    @Test("missing Message-ID and Date are added at the end of the header section")
    func missing() {
        let (out, state) = repair(["Subject: s\nReceived: a\nReceived: b\n\nbody\n"])
        #expect(out == "Subject: s\nReceived: a\nReceived: b\nMessage-ID: <id@host>\nDate: Sun, 1 Nov 2026 00:00:00 +0000\n\nbody\n")
        #expect(state.receivedCount == 2)
        #expect(state.messageID == "<id@host>")
    }

    @Test("a body without a header section gets headers and a separating empty line")
    func noHeaders() {
        let (out, _) = repair(["just text\nmore\n"], additions: .init(messageID: "<i@h>", date: "D", from: "jun@example.jp"))
        #expect(out == "Message-ID: <i@h>\nDate: D\nFrom: jun@example.jp\n\njust text\nmore\n")
    }

    @Test("a message that is only headers, without a final newline")
    func headersOnly() {
        let (out, _) = repair(["Subject: s\nDate: d"])
        #expect(out == "Subject: s\nDate: d\nMessage-ID: <id@host>\n")
    }
}

@Suite("Non-delivery reports")
struct DeliveryStatusNotificationTests {
    @Test("the report has the three RFC 3464 parts")
    func layout() {
        let report = DeliveryStatusNotification(
            hostname: "mail.example.jp", queueID: "Q1", recipient: "sender@example.org", arrivalDate: "A",
            date: "D", messageID: "<m@h>", boundary: "B", failures: [
                .init(recipient: "x@example.jp", originalRecipient: "team@example.jp", status: EnhancedStatusCode(5, 1, 1), diagnostic: "unknown user: \"x\""),
            ], isDoubleBounce: false)
        let text = report.head + "Subject: original\n" + report.trailer
        #expect(text.contains("Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"B\"\n"))
        #expect(text.contains("\nFinal-Recipient: rfc822; x@example.jp\nOriginal-Recipient: rfc822; team@example.jp\nAction: failed\nStatus: 5.1.1\n"))
        #expect(text.contains("--B\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\n"))
        #expect(text.hasSuffix("Subject: original\n\n--B--\n"))
        #expect(text.hasPrefix("From: MAILER-DAEMON@mail.example.jp (Mail Delivery System)\nTo: sender@example.org\n"))
    }
}
