import Testing
@testable import MailCore

@Suite("domaintable in header fields")
struct DomainRewriterTests {
    let rewriter = DomainRewriter(table: ["Old.Example.JP": "example.jp"])

    @Test("addresses in the old domain change; subdomains, quotes and comments do not", arguments: [
        (" Jun <jun@old.example.jp>, x@OLD.example.jp", " Jun <jun@example.jp>, x@example.jp"),
        (" a@sub.old.example.jp", nil),
        (" \"a@old.example.jp\" <b@old.example.jp> (c@old.example.jp)", " \"a@old.example.jp\" <b@example.jp> (c@old.example.jp)"),
        (" nobody@elsewhere.example", nil),
    ] as [(String, String?)])
    func header(value: String, expected: String?) {
        #expect(rewriter.rewriteHeaderValue(Array(value.utf8)).map { String(decoding: $0, as: UTF8.self) } == expected)
    }

    @Test("envelope addresses and whole messages")
    func envelope() {
        #expect(rewriter.rewriteAddress("jun@old.example.jp") == "jun@example.jp")
        #expect(rewriter.rewriteAddress("jun@example.org") == "jun@example.org")
        var repair = HeaderRepair(additions: .init(messageID: "<i@h>", date: "D", from: nil), rewriter: rewriter)
        var out: [UInt8] = []
        repair.feed(Array("From: jun@old.example.jp\nTo: a@b,\n  c@old.example.jp\nSubject: x@old.example.jp\nMessage-ID: <m@h>\nDate: d\n\nbody x@old.example.jp\n".utf8), into: &out)
        repair.finish(into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "From: jun@example.jp\nTo: a@b,\n  c@example.jp\nSubject: x@old.example.jp\nMessage-ID: <m@h>\nDate: d\n\nbody x@old.example.jp\n")
        #expect(repair.rewrittenHeaders == 2)
    }
}
