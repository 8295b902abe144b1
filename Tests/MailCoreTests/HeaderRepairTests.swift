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
