import Testing
@testable import MailCore

@Suite("RFC 5321 paths and mailboxes")
struct MailAddressTests {
    @Test("valid paths parse to local part and domain", arguments: [
        ("<jun@example.jp>", "jun", "example.jp"),
        ("jun@example.jp", "jun", "example.jp"),
        ("<@relay.example,@other.example:jun@example.jp>", "jun", "example.jp"),
        ("<\"john smith\"@example.org>", "\"john smith\"", "example.org"),
        ("<first.last+tag@sub.example.org>", "first.last+tag", "sub.example.org"),
        ("<root@[127.0.0.1]>", "root", "[127.0.0.1]"),
        ("<root@[IPv6:::1]>", "root", "[IPv6:::1]"),
        ("<postmaster>", "postmaster", nil),
    ] as [(String, String, String?)])
    func valid(text: String, local: String, domain: String?) throws {
        let address = try #require(try MailAddress.parsePath(Substring(text)))
        #expect(address.localPart == local)
        #expect(address.domain == domain)
    }

    @Test("the null path is nil")
    func nullPath() throws {
        #expect(try MailAddress.parsePath("<>") == nil)
    }

    @Test("invalid paths are refused with a reason", arguments: [
        ("<jun@example.jp", AddressSyntaxError.missingBrackets),
        ("jun@example.jp>", .missingBrackets),
        ("<a@@example.jp>", .badLocalPart),
        ("<a b@example.jp>", .badLocalPart),
        ("<.a@example.jp>", .badLocalPart),
        ("<a..b@example.jp>", .badLocalPart),
        ("<a@-example.jp>", .badDomain),
        ("<a@example..jp>", .badDomain),
        ("<a@[300.1.1.1]>", .badDomain),
        ("<jün@example.jp>", .nonASCII),
        ("<\"unterminated@example.jp>", .badLocalPart),
    ])
    func invalid(text: String, error: AddressSyntaxError) {
        #expect(throws: error) { try MailAddress.parsePath(Substring(text)) }
    }

    @Test("over-long local parts and paths are refused")
    func lengths() {
        #expect(throws: AddressSyntaxError.tooLong) {
            try MailAddress.parsePath(Substring("<" + String(repeating: "a", count: 65) + "@example.jp>"))
        }
        #expect(throws: AddressSyntaxError.tooLong) {
            try MailAddress.parsePath(Substring("<a@" + String(repeating: "b.", count: 130) + "jp>"))
        }
    }

    // Found by Fuzz/address: the parsers stepped through Characters, and a
    // Character can hide a quote, `@` or `>` behind a mark that joins it
    // (U+0600 is a prepended mark, U+0301 and U+200D join what precedes).
    @Test("paths are read byte by byte, whatever Characters the bytes form", arguments: [
        ("<\"\u{600}\" x\"@example.jp>", AddressSyntaxError.badLocalPart),
        ("<\"a\"\u{301}@example.jp>", .badLocalPart),
        ("<\"\u{600}\"@evil.example\"@example.jp>", .badDomain),
    ])
    func joinedCharacters(text: String, error: AddressSyntaxError) {
        #expect(throws: error) { try MailAddress.parsePath(Substring(text), allowUTF8: true) }
    }

    @Test("an @, a bracket or a quote that starts a Character still counts")
    func joinedDelimiters() throws {
        let joinedAt = try #require(try MailAddress.parsePath("<jun@\u{200D}example.jp>", allowUTF8: true))
        #expect(joinedAt.localPart == "jun")
        #expect(joinedAt.domain == "\u{200D}example.jp")
        let joinedBracket = try #require(try MailAddress.parsePath("<\u{301}jun@example.jp>", allowUTF8: true))
        #expect(joinedBracket.localPart == "\u{301}jun")
        let quotedLocalPart = "\"\u{600}\\\"X\""
        let quoted = try MailAddress.parseMailbox(Substring(quotedLocalPart + "@example.jp"), allowUTF8: true)
        #expect(quoted.localPart == quotedLocalPart)
        let key = "\u{600}\"x"
        #expect(quoted.localPartKey == key)
    }

    @Test("lookup keys are unquoted and lower case; domains compare case-insensitively")
    func keys() throws {
        let quoted = try MailAddress.parseMailbox("\"Jun\\\"X\"@Example.JP")
        #expect(quoted.localPartKey == "jun\"x")
        #expect(quoted.lowercasedDomain == "example.jp")
        #expect(try MailAddress.parseMailbox("postmaster").qualified(with: "mail.example.jp").description == "postmaster@mail.example.jp")
    }
}

@Suite("Queue IDs")
struct QueueIDTests {
    @Test("IDs sort by time and carry the inode")
    func ordering() {
        let a = QueueID(seconds: 1_800_000_000, microseconds: 5, inode: 999_999)
        let b = QueueID(seconds: 1_800_000_000, microseconds: 6, inode: 1)
        let c = QueueID(seconds: 1_800_000_001, microseconds: 0, inode: 7)
        #expect(a < b && b < c)
        #expect(a.seconds == 1_800_000_000)
        #expect(QueueID(a.rawValue) == a)
        #expect(a.rawValue.utf8.count == 11 + QueueID.encode(999_999, width: 1).utf8.count)
    }

    @Test("only well-formed names are queue IDs (they become file names)", arguments: [
        "../etc/passwd", "", "6KVKNX0DyCz", "6KVKNX0DyCz/x", "6KVKNX0DyCa2nrjQ", "6KVKNX0DyCzzz",
    ])
    func invalid(text: String) {
        #expect(QueueID(text) == nil)
    }
}

@Suite("Dates, delays and replies")
struct FormattingTests {
    let time = BrokenDownTime(year: 2026, month: 11, day: 9, hour: 8, minute: 5, second: 3, weekday: 1,
                              utcOffsetSeconds: 9 * 3600, zoneAbbreviation: "JST")

    @Test("RFC 5322, asctime and syslog shapes")
    func dates() {
        #expect(time.rfc5322 == "Mon, 9 Nov 2026 08:05:03 +0900 (JST)")
        #expect(time.asctime == "Mon Nov  9 08:05:03 2026")
        #expect(time.syslogStamp == "Nov  9 08:05:03")
        var west = time
        west.utcOffsetSeconds = -(3 * 3600 + 1800)
        west.zoneAbbreviation = "-0330"
        #expect(west.rfc5322 == "Mon, 9 Nov 2026 08:05:03 -0330")
    }

    @Test("delays in Postfix's style", arguments: [
        (0.0, "0"), (0.004, "0"), (0.03, "0.03"), (0.5, "0.5"), (1.27, "1.2"), (9.99, "9.9"), (12.7, "12"),
    ])
    func delays(seconds: Double, text: String) {
        #expect(DelayFormat.format(seconds) == text)
    }

    @Test("multi-line replies and control characters")
    func replies() {
        let reply = SMTPReply(250, nil, lines: ["one", "two"])
        #expect(reply.wireText() == "250-one\r\n250 two\r\n")
        let dirty = SMTPReply(550, EnhancedStatusCode(5, 1, 1), "<a\r\nb>... User unknown")
        #expect(dirty.wireText() == "550 5.1.1 <a  b>... User unknown\r\n")
        #expect(EnhancedStatusCode(parsing: "4.7.1") == EnhancedStatusCode(4, 7, 1))
        #expect(EnhancedStatusCode(parsing: "3.0.0") == nil)
    }
}
