import MailCore
import Testing
@testable import LocalDelivery

@Suite("Mailbox formats")
struct MailboxFormatTests {
    let date = BrokenDownTime(year: 2026, month: 11, day: 29, hour: 11, minute: 45, second: 39, weekday: 0,
                              utcOffsetSeconds: 0, zoneAbbreviation: "UTC")

    @Test("an mbox entry: From line, delivery headers, quoting, blank line")
    func mbox() {
        let content = Array("Subject: s\n\nFrom me\n>From you\n From not\nFrom\nend".utf8)
        let entry = MailboxFormat.mboxEntry(sender: "a@example.org", recipient: "jun@example.jp", date: date, content: content)
        #expect(String(decoding: entry, as: UTF8.self) == """
        From a@example.org  Sun Nov 29 11:45:39 2026
        Return-Path: <a@example.org>
        Delivered-To: jun@example.jp
        Subject: s

        >From me
        >From you
         From not
        From
        end


        """)
    }

    @Test("the null sender is MAILER-DAEMON on the From line and <> in Return-Path")
    func nullSender() {
        let entry = String(decoding: MailboxFormat.mboxEntry(sender: "", recipient: "r@h", date: date, content: Array("x\n".utf8)), as: UTF8.self)
        #expect(entry.hasPrefix("From MAILER-DAEMON  Sun Nov 29 11:45:39 2026\nReturn-Path: <>\n"))
        #expect(entry.hasSuffix("x\n\n"))
    }

    @Test("Maildir files carry the delivery headers and the content unchanged")
    func maildir() {
        let file = MailboxFormat.maildirFile(sender: "a@b", recipient: "c@d", content: Array("From x\n".utf8))
        #expect(String(decoding: file, as: UTF8.self) == "Return-Path: <a@b>\nDelivered-To: c@d\nFrom x\n")
    }

    @Test("Delivered-To in the header section marks a loop; in the body it does not")
    func loops() {
        let content = Array("Received: x\nDelivered-To: JUN@example.jp\n\nbody\n".utf8)
        #expect(MailboxFormat.hasDeliveredTo("jun@example.jp", in: content))
        #expect(!MailboxFormat.hasDeliveredTo("other@example.jp", in: content))
        #expect(!MailboxFormat.hasDeliveredTo("jun@example.jp", in: Array("Subject: x\n\nDelivered-To: jun@example.jp\n".utf8)))
    }
}
