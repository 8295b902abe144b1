#if canImport(Glibc)
import Glibc
#endif
import Logging
import MailCore

/// Logging for every program. Lines carry Postfix's shapes and prefixes
/// (`warning: `, `error: `, `fatal: `) so that admins' habits and pflogsumm
/// work.
///
/// Under the master, a program writes `<priority>text` lines to its stderr,
/// a pipe the master reads; the master adds the time, host, program name and
/// pid (so a program cannot log in another's name) and sends the line to
/// syslog or the maillog file. Run by hand, a program writes complete lines
/// to stderr itself.
public enum MailLog {
    /// Installs the handler; call once, first thing in main.
    public static func bootstrap(program: String, syslogName: String = "hikyaku", underMaster: Bool, verbose: Bool = false) {
        let ident = "\(syslogName)/\(program)"
        LoggingSystem.bootstrap { label in
            var handler = MailLogHandler(label: label, ident: ident, underMaster: underMaster)
            handler.logLevel = verbose ? .debug : .info
            return handler
        }
    }

    /// syslog severity for a swift-log level.
    public static func severity(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info, .notice: return 6
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// Postfix's prefix for a severity.
    public static func prefix(severity: Int) -> String {
        switch severity {
        case 4: return "warning: "
        case 3: return "error: "
        case 0...2: return "fatal: "
        default: return ""
        }
    }
}

struct MailLogHandler: LogHandler {
    let label: String
    let ident: String
    let underMaster: Bool
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    init(label: String, ident: String, underMaster: Bool) {
        self.label = label
        self.ident = ident
        self.underMaster = underMaster
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let severity = MailLog.severity(event.level)
        var text = MailLog.prefix(severity: severity) + event.message.description
        // One event is one line; a control character could forge another.
        if text.utf8.contains(where: { $0 < 0x20 }) {
            text = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 ? " " : $0 }))
        }
        if text.utf8.count > 3800 { text = String(decoding: text.utf8.prefix(3800), as: UTF8.self) + "..." }
        let line: String
        if underMaster {
            line = "<\(severity)>\(text)\n"
        } else {
            let stamp = WallClock.localTime(WallClock.seconds()).syslogStamp
            line = "\(stamp) \(ident)[\(getpid())]: \(text)\n"
        }
        var bytes = Array(line.utf8)
        // One write per line: lines under PIPE_BUF never interleave.
        bytes.withUnsafeMutableBytes { _ = write(STDERR_FILENO, $0.baseAddress!, $0.count) }
    }
}
