#if canImport(Glibc)
import Glibc
#endif
import CShims
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import MailCore
import QueueInspection

/// `sendmail [-t] [-i] [-f sender] [-F name] recipient...`: the message on
/// standard input goes into the queue. Mail is never silently lost: when it
/// cannot be queued it is appended to ~/dead.letter, and the error says so.
enum Submit {
    static func run(_ options: SendmailOptions, configuration: Configuration, configPath: String?, io: CommandIO) -> Int32 {
        guard let input = io.readAll() else {
            io.error("sendmail: cannot read the message from standard input")
            return SendmailCommand.exIOErr
        }
        let content = SubmittedMessage.normalize(input, ignoreDots: options.ignoreDots)
        // Header injection: an option or recipient that carries a line break.
        for (what, value) in [("-f", options.sender), ("-F", options.fullName)] + options.recipients.map({ ("recipient", $0) }) {
            if let value, value.contains(where: { $0 == "\r" || $0 == "\n" }) {
                io.error("sendmail: illegal line break in the \(what) argument")
                return keep(content, io: io, status: SendmailCommand.exUsage)
            }
        }
        var recipients = options.recipients
        if options.extractRecipients {
            // Postfix's rule: header recipients, and the command line's too.
            recipients = SendmailAddressList.recipients(inHeaders: content) + recipients
            if recipients.isEmpty {
                io.error("sendmail: no recipient addresses found in the message header (-t)")
                return keep(content, io: io, status: SendmailCommand.exUsage)
            }
        }
        recipients = SendmailAddressList.removingDuplicates(
            recipients.map { SendmailAddressList.addrSpec($0) }.filter { !$0.isEmpty },
            origin: configuration.string("myorigin"))
        guard !recipients.isEmpty else {
            io.error("sendmail: Recipient names must be specified")
            return keep(content, io: io, status: SendmailCommand.exUsage)
        }
        if let bad = recipients.first(where: { SendmailAddressList.isUnacceptable($0) }) {
            io.error("sendmail: \(bad): bad recipient address syntax")
            return keep(content, io: io, status: SendmailCommand.exUsage)
        }
        // What cleanup would refuse after we had said yes: say no now.
        if let refusal = SubmissionLimits(sizeLimit: configuration.size("message_size_limit")).check(content) {
            io.error("sendmail: \(refusal)")
            return keep(content, io: io, status: SendmailCommand.exDataErr)
        }
        // Postfix's rule: a uid the passwd database does not know has no
        // address to send from (nor to be told of a failure at), so it must
        // name one with -f.
        if options.sender == nil && PasswdEntry.lookup(uid: getuid()) == nil {
            io.error("sendmail: no login name found for user ID \(getuid()); give a sender address with -f")
            return keep(content, io: io, status: SendmailCommand.exOSErr)
        }
        let file = MaildropFile(requestedSender: options.sender, recipients: recipients,
                                removeBcc: options.extractRecipients, fullName: options.fullName,
                                bodyType: options.bodyType, notify: options.notify, ret: options.ret,
                                envid: options.envid, ignoredOptions: options.ignored, content: content)
        switch drop(file, configuration: configuration, configPath: configPath) {
        case .success:
            return SendmailCommand.exOK
        case .failure(let failure):
            io.error("sendmail: cannot queue the message: \(failure)")
            return keep(content, io: io, status: failure.exitStatus)
        }
    }

    struct DropFailure: Error, CustomStringConvertible {
        let description: String
        /// The helper's exit status, when it ran and refused.
        var helperStatus: Int32? = nil

        /// sendmail's own: the helper refused the message (65), or the
        /// configuration it was given (64: a setup problem, EX_CONFIG);
        /// anything else may pass (EX_TEMPFAIL).
        var exitStatus: Int32 {
            switch helperStatus {
            case MaildropWriter.exDataErr: return SendmailCommand.exDataErr
            case MaildropWriter.exUsage: return SendmailCommand.exConfig
            default: return SendmailCommand.exTempFail
            }
        }
    }

    /// Runs the setgid helper with the maildrop file on its standard input;
    /// root, who needs no group to write into maildrop/, runs the helper's
    /// code in this process (one program start less for cron's and the
    /// system's mail, the same checks, the same file).
    static func drop(_ file: MaildropFile, configuration: Configuration, configPath: String?) -> Result<Void, DropFailure> {
        if getuid() == 0 && geteuid() == 0 {
            var said: [String] = []
            let status = MaildropWriter.write(file.encoded(), configuration: configuration, error: { said.append($0) })
            if status == MaildropWriter.exOK { return .success(()) }
            return .failure(DropFailure(description: said.joined(separator: "; "), helperStatus: status))
        }
        let helper = configuration.string("daemon_directory") + "/hikyaku-drop"
        guard access(helper, X_OK) == 0 else { return .failure(DropFailure(description: "\(helper) is missing")) }
        let input = hk_memfd("hikyaku-submission")
        let errors = hk_memfd("hikyaku-drop-errors")
        guard input >= 0, errors >= 0 else { return .failure(DropFailure(description: "cannot pass the message to \(helper)")) }
        defer { close(input); close(errors) }
        do {
            try FileIO.writeAll(input, file.encoded())
            _ = lseek(input, 0, SEEK_SET)
            var arguments = ["hikyaku-drop"]
            if let configPath { arguments += ["-c", configPath] }
            let pid = try ProcessSpawner.spawn(
                path: helper, arguments: arguments, environment: ["PATH=/usr/bin:/bin"],
                fdMap: [(try ProcessSpawner.moveAbove(dup(input)), 0), (try ProcessSpawner.moveAbove(dup(errors)), 2)])
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let termination = ProcessSpawner.Termination(status: status)
            if termination == .exited(0) { return .success(()) }
            _ = lseek(errors, 0, SEEK_SET)
            let said = (try? FileIO.readAll(errors, limit: 4096)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            var exitCode: Int32? = nil
            if case .exited(let code) = termination { exitCode = code }
            return .failure(DropFailure(description: said.isEmpty ? "\(helper) \(termination)" : said.trimmingSpaces(),
                                        helperStatus: exitCode))
        } catch {
            return .failure(DropFailure(description: "\(error)"))
        }
    }

    /// Appends the message to ~/dead.letter as an mbox entry and says so.
    static func keep(_ content: [UInt8], io: CommandIO, status: Int32) -> Int32 {
        guard let user = PasswdEntry.lookup(uid: getuid()) else {
            io.error("sendmail: the message was not queued and could not be saved (no home directory)")
            return status
        }
        let path = user.home + "/dead.letter"
        let date = WallClock.localTime(WallClock.seconds())
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        var saved = false
        if fd >= 0 {
            // The end of what is there decides whether a separator line needs
            // an empty line before it.
            let size = Int((try? FileIO.fstat(fd, path: path))?.st_size ?? 0)
            let tail = size > 0 ? ((try? FileIO.pread(fd, count: min(2, size), at: size - min(2, size), path: path)) ?? [10, 10]) : []
            saved = (try? FileIO.writeAll(fd, DeadLetter.entry(user: user.name, date: date, content: content, after: tail))) != nil
            close(fd)
        }
        io.error(saved ? "sendmail: the message is saved in \(path)"
                       : "sendmail: the message was not queued and could not be saved in \(path)")
        return status
    }
}

/// ~/dead.letter is an mbox file: mail programs read it as a mailbox, so every
/// saved message must be a whole entry that cannot be confused with two.
enum DeadLetter {
    /// The entry to append to a file whose last bytes are `tail` (empty for an
    /// empty file): an empty line first if the file does not already end in
    /// one, then the `From USER  DATE` line, the message with `From ` lines
    /// quoted as `>From `, and an empty line.
    static func entry(user: String, date: BrokenDownTime, content: [UInt8], after tail: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        if !tail.isEmpty {
            if tail.last != 10 { out += [10, 10] } else if tail.count < 2 || tail[tail.count - 2] != 10 { out.append(10) }
        }
        return out + MboxEntry.make(envelopeSender: user, date: date, content: content)
    }
}

enum QueueRun {
    /// mailq: the listing from showq, or read directly when we may.
    static func list(configuration: Configuration, io: CommandIO) -> Int32 {
        let spool = SpoolLayout(root: configuration.string("queue_directory"))
        var entries: [QueueEntry] = []
        do {
            let connection = try BlockingIPCConnection(connectingTo: spool.socket(.showq), timeout: 120)
            try connection.send(IPCFrame(.showqList))
            while let frame = try connection.receive(), frame.type != .showqEnd {
                if let entry = ShowqDaemon.entry(frame) { entries.append(entry) }
            }
        } catch {
            guard access(spool.directory(.incoming), R_OK | X_OK) == 0 else {
                io.error("mailq: cannot reach the queue listing service (\(spool.socket(.showq))): \(error)")
                return SendmailCommand.exUnavailable
            }
            entries = QueueListing.entries(spool: spool)
        }
        let text = QueueListing.mailq(entries)
        io.write(Array(text.utf8))
        return SendmailCommand.exOK
    }

    /// sendmail -q: every deferred message is tried again now.
    static func flush(configuration: Configuration, io: CommandIO) -> Int32 {
        let spool = SpoolLayout(root: configuration.string("queue_directory"))
        guard let connection = try? BlockingIPCConnection(connectingTo: spool.socket(.qmgr), timeout: 30),
              (try? connection.send(IPCFrame(.qmgrFlush))) != nil else {
            io.error("sendmail: cannot reach the queue manager (is the mail system running, and are you root?)")
            return SendmailCommand.exUnavailable
        }
        return SendmailCommand.exOK
    }

    /// sendmail -bd: become the master.
    static func startMaster(configuration: Configuration, configPath: String?, io: CommandIO) -> Int32 {
        let master = configuration.string("daemon_directory") + "/master"
        var arguments = ["master"]
        if let configPath { arguments += ["-c", configPath] }
        let argv = arguments.map { strdup($0) } + [nil]
        execv(master, argv)
        io.error("sendmail: cannot start \(master): \(String(cString: strerror(errno)))")
        return SendmailCommand.exUnavailable
    }
}

extension SendmailAddressList {
    /// A recipient the queue could not take: control characters, or not an
    /// address at all.
    static func isUnacceptable(_ address: String) -> Bool {
        address.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f } || address.hasPrefix("@") && !address.contains(":")
    }
}
