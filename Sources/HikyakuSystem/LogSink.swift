#if canImport(Glibc)
import Glibc
#endif
import CShims
import MailCore

/// Where the master sends log lines: syslog's mail facility (the default, so
/// /var/log/mail.log fills when rsyslog runs), a file (`maillog_file`), or,
/// under systemd, the journal with structured fields.
public final class LogSink {
    public enum Destination: Equatable {
        case syslog
        case file(String)
        /// journald's native protocol; syslog when the journal refuses.
        case journal
    }

    /// Sends one journal entry, given as `FIELD=value` strings; false when
    /// the journal did not take it. (The master passes libsystemd's
    /// sd_journal_sendv; nothing else links libsystemd.)
    public typealias JournalSender = ([String]) -> Bool

    let destination: Destination
    let hostname: String
    var fd: Int32 = -1
    let alsoStderr: Bool
    let journal: JournalSender?

    public init(destination: Destination, hostname: String, alsoStderr: Bool = false, journal: JournalSender? = nil) {
        self.destination = destination
        self.hostname = hostname.split(separator: ".").first.map(String.init) ?? hostname
        self.alsoStderr = alsoStderr
        self.journal = journal
        open()
    }

    /// Lines for the file collected by ``batch(_:)``, written at its end.
    var pending: [UInt8]? = nil

    deinit { if fd >= 0 { Glibc.close(fd) } }

    /// Runs `body`, writing the lines it emits to the file in one write(2)
    /// at its end (the master reads a pipe's worth of lines at a time).
    public func batch(_ body: () -> Void) {
        guard case .file = destination, pending == nil else { return body() }
        pending = []
        body()
        let lines = pending ?? []
        pending = nil
        guard !lines.isEmpty, fd >= 0 else { return }
        _ = lines.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
    }

    func open() {
        switch destination {
        case .file(let path):
            // Our own copies never leak into the programs the master starts.
            if path == "/dev/stderr" { fd = hk_dup_cloexec_above(STDERR_FILENO, 3); return }
            if path == "/dev/stdout" { fd = hk_dup_cloexec_above(STDOUT_FILENO, 3); return }
            fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        case .syslog, .journal:
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if fd >= 0 {
                var address = sockaddr_un()
                address.sun_family = sa_family_t(AF_UNIX)
                let path = Array("/dev/log".utf8)
                withUnsafeMutableBytes(of: &address.sun_path) { raw in
                    for (i, b) in path.enumerated() { raw[i] = b }
                }
                let rc = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
                if rc != 0 { Glibc.close(fd); fd = -1 }
            }
        }
    }

    /// Reopens the file (after logrotate) or reconnects to syslog.
    public func reopen() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        open()
    }

    /// Emits one line for `ident[pid]: text` with a syslog severity.
    public func emit(severity: Int, ident: String, pid: Int32, text: String) {
        let stamp = WallClock.localTime(WallClock.seconds()).syslogStamp
        let body = "\(ident)[\(pid)]: \(text)"
        let mailFacility = 2
        switch destination {
        case .file:
            let line = "\(stamp) \(hostname) \(body)\n"
            if pending != nil { pending!.append(contentsOf: line.utf8) } else { write(line) }
        case .journal where journal?(Self.journalFields(severity: severity, ident: ident, pid: pid, text: text)) == true:
            break
        case .syslog, .journal:
            if fd < 0 { open() }
            if !write("<\(mailFacility * 8 + severity)>\(stamp) \(body)") {
                reopen()
            }
        }
        if alsoStderr && destination != .file("/dev/stderr") {
            let line = Array("\(stamp) \(body)\n".utf8)
            line.withUnsafeBytes { _ = Glibc.write(STDERR_FILENO, $0.baseAddress!, $0.count) }
        }
    }

    /// A journal entry: the text as MESSAGE, with the fields syslog would
    /// have given (PRIORITY, SYSLOG_FACILITY=2 for mail, SYSLOG_IDENTIFIER
    /// such as `hikyaku/smtpd`, SYSLOG_PID), and QUEUE_ID when the line is
    /// about a queued message (`ID: ...`, after any `warning: ` prefix).
    public static func journalFields(severity: Int, ident: String, pid: Int32, text: String) -> [String] {
        var fields = ["MESSAGE=\(text)", "PRIORITY=\(severity)", "SYSLOG_FACILITY=2",
                      "SYSLOG_IDENTIFIER=\(ident)", "SYSLOG_PID=\(pid)"]
        var rest = Substring(text)
        for prefix in ["warning: ", "error: ", "fatal: "] where rest.hasPrefix(prefix) {
            rest = rest.dropFirst(prefix.count)
        }
        if let colon = rest.firstIndex(of: ":"), let id = QueueID(String(rest[..<colon])) {
            fields.append("QUEUE_ID=\(id)")
        }
        return fields
    }

    @discardableResult
    func write(_ text: String) -> Bool {
        guard fd >= 0 else { return false }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) } == bytes.count
    }
}
