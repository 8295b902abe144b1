import MailCore
import Testing
@testable import Submission

@Suite("~/dead.letter entries")
struct DeadLetterTests {
    let date = BrokenDownTime(year: 2026, month: 11, day: 29, hour: 11, minute: 45, second: 39, weekday: 0,
                              utcOffsetSeconds: 0, zoneAbbreviation: "UTC")

    func entry(_ content: String, after tail: String = "") -> String {
        String(decoding: DeadLetter.entry(user: "jun", date: date, content: Array(content.utf8), after: Array(tail.utf8)),
               as: UTF8.self)
    }

    @Test("a separator line, From_ lines quoted, an empty line after")
    func quoting() {
        #expect(entry("Subject: x\n\nFrom here on\nFromage\n>From kept\n From indented\n")
                == "From jun  Sun Nov 29 11:45:39 2026\nSubject: x\n\n>From here on\nFromage\n>From kept\n From indented\n\n")
    }

    @Test("a message without a final newline still ends the entry properly")
    func finalNewline() {
        #expect(entry("Subject: y\n\nlast line") == "From jun  Sun Nov 29 11:45:39 2026\nSubject: y\n\nlast line\n\n")
    }

    @Test("an empty line is put before the separator when the file does not end in one",
          arguments: [("", ""), ("x\n\n", ""), ("\n", "\n"), ("x\n", "\n"), ("x", "\n\n")])
    func separation(tail: String, prefix: String) {
        #expect(entry("b\n", after: tail) == prefix + "From jun  Sun Nov 29 11:45:39 2026\nb\n\n")
    }
}
