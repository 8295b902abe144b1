#if canImport(Glibc)
import Glibc
#endif
import MailCore
import Testing
@testable import HikyakuSystem

@Suite("journal fields of a log line")
struct LogSinkJournalTests {
    @Test("a line about a queued message carries QUEUE_ID, after any severity prefix")
    func queueID() {
        let id = QueueID(seconds: 1_700_000_000, microseconds: 1234, inode: 98765).rawValue
        let fields = LogSink.journalFields(severity: 6, ident: "hikyaku/smtpd", pid: 42,
                                           text: "\(id): client=localhost[127.0.0.1]")
        #expect(fields == ["MESSAGE=\(id): client=localhost[127.0.0.1]", "PRIORITY=6", "SYSLOG_FACILITY=2",
                           "SYSLOG_IDENTIFIER=hikyaku/smtpd", "SYSLOG_PID=42", "QUEUE_ID=\(id)"])
        let warning = LogSink.journalFields(severity: 4, ident: "hikyaku/qmgr", pid: 7,
                                            text: "warning: \(id): queue file damaged")
        #expect(warning.last == "QUEUE_ID=\(id)")
    }

    @Test("other lines have no QUEUE_ID")
    func noQueueID() {
        for text in ["connect from localhost[127.0.0.1]", "NOQUEUE: reject: RCPT from x[192.0.2.1]: 550 5.1.1 nope",
                     "warning: cannot start /usr/lib/hikyaku/local: no such file"] {
            let fields = LogSink.journalFields(severity: 6, ident: "hikyaku/smtpd", pid: 1, text: text)
            #expect(!fields.contains { $0.hasPrefix("QUEUE_ID=") }, "\(text)")
        }
    }

    @Test("a batch of lines reaches the file in one piece, in order, at its end")
    func batch() throws {
        var template = Array("/tmp/hikyaku-logsink-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        let path = dir + "/maillog"
        let sink = LogSink(destination: .file(path), hostname: "mail.example.test")
        sink.emit(severity: 6, ident: "hikyaku/master", pid: 1, text: "before")
        sink.batch {
            sink.emit(severity: 6, ident: "hikyaku/local", pid: 2, text: "one")
            sink.emit(severity: 4, ident: "hikyaku/local", pid: 2, text: "two")
            #expect(String(decoding: (try? FileIO.readFile(path)) ?? [], as: UTF8.self).hasSuffix("before\n"))
        }
        let lines = String(decoding: try FileIO.readFile(path), as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[1].hasSuffix(" mail hikyaku/local[2]: one") && lines[2].hasSuffix(" mail hikyaku/local[2]: two"))
    }
}
