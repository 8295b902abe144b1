#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import DNSResolver
import HikyakuConfig
import HikyakuSystem
import SendmailMC

/// hikyaku - the administrator's command
///
/// Description: starts, stops and reloads the master, tells whether it runs
/// and how full the queue is, checks the configuration and the spool, and
/// shows the effective configuration.
///
/// Security: `start`, `stop` and `reload` need the rights to signal the
/// master (root for a system installation); `status`, `check`, `config
/// show` and `config import-sendmail-mc` only read.
public struct HikyakuCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "hikyaku",
        abstract: "Control the hikyaku mail system.",
        version: HikyakuVersion.string,
        subcommands: [Start.self, Stop.self, Reload.self, Status.self, Check.self, ConfigCommand.self, Explain.self, QueueCommand.self])

    public init() {}
}

struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: "The configuration file.")
    var config: String?

    func load() throws -> Configuration {
        do {
            return try ConfigurationLoader.load(path: config)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// The master's pid, if one holds the lock on its pid file.
func runningMaster(_ configuration: Configuration) -> pid_t? {
    let path = SpoolLayout(root: configuration.string("queue_directory")).masterPIDFile
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    // A master holds an exclusive lock for its whole life.
    if flock(fd, LOCK_SH | LOCK_NB) == 0 { return nil }
    guard let bytes = try? FileIO.readAll(fd) else { return nil }
    return pid_t(String(decoding: bytes, as: UTF8.self).filter(\.isNumber))
}

func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    let bytes = Array("hikyaku: \(message)\n".utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress!, $0.count) }
    return ExitCode(code)
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the master in the background.")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        if let pid = runningMaster(config) { throw fail("the mail system is already running (pid \(pid))") }
        let master = config.string("daemon_directory") + "/master"
        // The master logs to syslog or maillog_file; it keeps no terminal.
        let devNull = try ProcessSpawner.moveAbove(try FileIO.open("/dev/null", O_RDWR))
        var arguments = ["master"]
        if let path = options.config { arguments += ["-c", path] }
        _ = try ProcessSpawner.spawn(path: master, arguments: arguments,
                                     environment: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"],
                                     fdMap: [(devNull, 0), (devNull, 1), (devNull, 2)])
        for _ in 0..<100 {
            if let pid = runningMaster(config) {
                print("hikyaku: started (pid \(pid))")
                return
            }
            usleep(100_000)
        }
        throw fail("the master did not start; see the mail log")
    }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the master and every program it runs.")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        guard let pid = runningMaster(config) else { throw fail("the mail system is not running") }
        guard kill(pid, SIGTERM) == 0 else { throw fail("cannot signal pid \(pid): \(SystemError("kill", "").description)") }
        for _ in 0..<300 {
            if runningMaster(config) == nil {
                print("hikyaku: stopped")
                return
            }
            usleep(100_000)
        }
        throw fail("the master (pid \(pid)) did not stop within 30 seconds")
    }
}

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make every program take up the configuration again (SIGHUP to the master).")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        guard let pid = runningMaster(config) else { throw fail("the mail system is not running") }
        guard kill(pid, SIGHUP) == 0 else { throw fail("cannot signal pid \(pid): \(SystemError("kill", "").description)") }
        print("hikyaku: reloading (pid \(pid))")
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say whether the master runs and how many messages each queue holds; exit 3 if it does not run.")
    @OptionGroup var options: ConfigOption

    @Flag(name: .shortAndLong, help: "Also list the master's programs and the last warnings and errors in the log.")
    var verbose = false

    /// The programs the master runs (its children, from /proc), and the
    /// last warnings and errors of maillog_file or /var/log/mail.log.
    static func describe(master: pid_t, config: Configuration) {
        print("processes:")
        print("  master \(master)")
        var children: [(String, Int32)] = []
        for entry in (try? FileIO.listDirectory("/proc")) ?? [] {
            guard let pid = Int32(entry), let stat = try? FileIO.readFile("/proc/\(entry)/stat", limit: 4096) else { continue }
            // pid (comm) state ppid ...: the command may hold spaces and parentheses.
            let text = String(decoding: stat, as: UTF8.self)
            guard let close = text.lastIndex(of: ")"), let open = text.firstIndex(of: "(") else { continue }
            let fields = text[text.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == master else { continue }
            children.append((String(text[text.index(after: open)..<close]), pid))
        }
        for (name, pid) in children.sorted(by: { ($0.0, $0.1) < ($1.0, $1.1) }) {
            print("  \(name) \(pid)")
        }
        let file = config.string("maillog_file")
        let log = file.isEmpty ? "/var/log/mail.log" : file
        guard let bytes = try? FileIO.readTail(log, limit: 1 << 20) else {
            print("last errors: \(log) cannot be read\(file.isEmpty ? " (under systemd: journalctl -t \(config.string("syslog_name"))/smtpd and the other programs)" : "")")
            return
        }
        let ident = config.string("syslog_name") + "/"
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").filter {
            $0.contains(ident) && ($0.contains("]: warning: ") || $0.contains("]: error: ") || $0.contains("]: fatal: ") || $0.contains("]: panic: "))
        }
        print("last errors (\(log)):\(lines.isEmpty ? " none" : "")")
        for line in lines.suffix(5) { print("  \(line)") }
    }

    func run() throws {
        let config = try options.load()
        let spool = SpoolLayout(root: config.string("queue_directory"))
        let counts = [SpoolLayout.Queue.incoming, .active, .deferred, .hold, .corrupt].map { queue in
            "\(queue.rawValue)=\((try? FileIO.listDirectory(spool.directory(queue)).count) ?? 0)"
        }
        if let pid = runningMaster(config) {
            print("hikyaku: the mail system is running (pid \(pid)); queue: \(counts.joined(separator: " "))")
            if verbose { Self.describe(master: pid, config: config) }
        } else {
            print("hikyaku: the mail system is not running; queue: \(counts.joined(separator: " "))")
            throw ExitCode(3)
        }
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the configuration, the maps, the programs, the spools and the listeners; report every problem found, with what to do; exit 1 if there is one.")
    @OptionGroup var options: ConfigOption

    @Option(help: ArgumentHelp("The sendmail command other programs call; checked to be hikyaku's. Default: /usr/sbin/sendmail when hikyaku itself is installed in /usr/sbin, else not checked.", valueName: "path"))
    var sendmailPath: String?

    func run() throws {
        let config = try options.load()
        var problems: [String] = []
        for (key, line) in config.unknownKeys {
            problems.append("\(config.path), line \(line): unknown parameter \(key)")
        }
        let resolver = config.string("dns_resolver")
        if !resolver.isEmpty {
            do {
                _ = try NameserverAddress(parsing: resolver)
            } catch {
                problems.append("\(ConfigError(file: config.path, line: config.line(of: "dns_resolver"), key: "dns_resolver", reason: error.message))")
            }
        }
        do {
            _ = try Nexthop.smartHost(config)
        } catch {
            problems.append("\(error)")
        }
        for key in ["smtp_tls_security_level", "smtpd_tls_security_level"] {
            let level = config.string(key)
            if !["none", "may", "encrypt"].contains(level) {
                problems.append("\(ConfigError(file: config.path, line: config.line(of: key), key: key, reason: "expected none, may or encrypt, found '\(level)'"))")
            }
        }
        let owner = config.string("mail_owner")
        let entry = PasswdEntry.lookup(name: owner)
        if entry == nil {
            problems.append("mail_owner \(owner): no such user (Packaging/create-users.sh creates it)")
        } else if entry!.uid == 0 {
            problems.append("mail_owner \(owner) must not be root")
        }
        let directory = config.string("daemon_directory")
        for program in ["master", "smtpd", "cleanup", "qmgr", "local", "aliasd", "pickup", "showq", "smtp-client", "hikyaku-drop"]
            where access(directory + "/" + program, X_OK) != 0 {
            problems.append("\(directory)/\(program) is missing or not executable")
        }
        let groupName = config.string("setgid_group")
        let dropGroup = GroupEntry.gid(named: groupName)
        // As root the check describes a system installation, with privilege
        // separation; an ordinary user's `make run` has none of this.
        if Privilege.isRoot {
            if dropGroup == nil {
                problems.append("setgid_group \(groupName): no such group (Packaging/create-users.sh creates it)")
            }
            // The helper is the one set-gid program: root's, group
            // setgid_group, 2755, and writable by nobody but root.
            let helper = directory + "/hikyaku-drop"
            if let st = FileIO.stat(helper), let dropGroup,
               st.st_uid != 0 || st.st_gid != dropGroup || st.st_mode & 0o7777 != 0o2755 {
                problems.append("\(helper) should be owned by root, group \(groupName), with mode 2755 (setgid); it is "
                                + Self.describe(st) + ": the sendmail command cannot queue mail")
            }
        }
        let spool = SpoolLayout(root: config.string("queue_directory"))
        if FileIO.stat(spool.root) != nil, let entry {
            // SpoolPreparer's layout: the queue directories, defer/ and
            // private/ the mail owner's alone; maildrop/ and public/ with the
            // helper's group (1730: write but not list; 0711: reach the
            // pickup socket by name).
            var wanted: [(path: String, mode: mode_t, group: gid_t?)] = SpoolLayout.Queue.allCases.map {
                (spool.directory($0), $0 == .maildrop ? 0o1730 : 0o700, $0 == .maildrop ? dropGroup : nil)
            }
            wanted.append((spool.deferDirectory, 0o700, nil))
            wanted.append((spool.privateDirectory, 0o700, nil))
            wanted.append((spool.publicDirectory, 0o711, dropGroup))
            for (path, mode, group) in wanted {
                guard let st = FileIO.stat(path) else {
                    problems.append("\(path) is missing (the master creates it)")
                    continue
                }
                guard Privilege.isRoot else { continue }
                if st.st_uid != entry.uid || st.st_mode & 0o7777 != mode || (group != nil && st.st_gid != group!) {
                    let groupText = group != nil ? ", group \(groupName)," : ""
                    problems.append("\(path) should be owned by \(owner)\(groupText) with mode \(String(mode, radix: 8)); it is "
                                    + Self.describe(st))
                }
            }
            let corrupt = (try? FileIO.listDirectory(spool.directory(.corrupt)).count) ?? 0
            if corrupt > 0 { problems.append("\(corrupt) damaged queue file(s) in \(spool.directory(.corrupt))") }
        }
        for key in ["alias_file", "mail_spool_directory"] where FileIO.stat(config.string(key)) == nil {
            problems.append("\(key) = \(config.string(key)): no such file or directory")
        }
        problems += SystemChecks.maps(config)
        problems += SystemChecks.mailSpool(config)
        if let ours = SystemChecks.companionSendmail {
            let installed = ours.hasPrefix("/usr/sbin/")
            if let path = sendmailPath ?? (installed ? "/usr/sbin/sendmail" : nil) {
                problems += SystemChecks.sendmailCommand(path, ours: ours)
            }
        }
        problems += SystemChecks.listeners(config, masterRunning: runningMaster(config) != nil)
        for problem in problems { print("hikyaku: warning: \(problem)") }
        if !problems.isEmpty { throw ExitCode(1) }
        print("hikyaku: configuration \(config.path) and spool \(spool.root) are in order")
    }

    /// `owner OWNER, group GROUP, mode MODE`, by name where there is one.
    static func describe(_ st: stat) -> String {
        let user = PasswdEntry.lookup(uid: st.st_uid)?.name ?? String(st.st_uid)
        let group = GroupEntry.name(of: st.st_gid) ?? String(st.st_gid)
        return "owner \(user), group \(group), mode \(String(st.st_mode & 0o7777, radix: 8))"
    }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Show the configuration, or translate sendmail's.",
        subcommands: [Show.self, ImportSendmailMC.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print every parameter with its effective value (only those set in the file with --set).")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Only the parameters set in the file.")
        var set = false

        func run() throws {
            let config = try options.load()
            for (key, value) in config.effectiveValues where !set || config.line(of: key) > 0 {
                print("\(key) = \(value)")
            }
        }
    }

    /// hikyaku config import-sendmail-mc FILE: sendmail.mc's settings as
    /// hikyaku.conf lines on standard output (SendmailMCImporter), with the
    /// macros not translated listed at the end.
    struct ImportSendmailMC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-sendmail-mc",
            abstract: "Translate a sendmail.mc file into hikyaku.conf settings, printed on standard output.",
            discussion: """
                Exit status: 0 when every macro that matters was translated; 1 when some of what sendmail did \
                is not (listed at the end of the output); 2 when the file cannot be read or is not m4 \
                that can be read.
                """)
        @Argument(help: "The sendmail.mc file, for example /etc/mail/sendmail.mc.")
        var file: String

        func run() throws {
            let text: String
            do {
                text = String(decoding: try FileIO.readFile(file, limit: 16 << 20), as: UTF8.self)
            } catch {
                throw fail("\(file): cannot read: \(String(cString: strerror(error.errno)))", code: 2)
            }
            let translation: MCTranslation
            do {
                translation = try SendmailMCImporter.translate(text, file: file, includes: Self.readInclude)
            } catch {
                throw fail("\(error)", code: 2)
            }
            print(translation.rendered(), terminator: "")
            let missing = translation.untranslated.filter(\.changesBehaviour).count
            if missing > 0 {
                throw fail("\(file): \(missing) of its macros or lines are not translated and change what the mail "
                           + "system does; they are listed at the end of the output")
            }
        }

        /// An included file, for M4Reader.
        static func readInclude(_ path: String) -> Result<String, MCIncludeFailure> {
            do {
                return .success(String(decoding: try FileIO.readFile(path, limit: 16 << 20), as: UTF8.self))
            } catch {
                return .failure(MCIncludeFailure(String(cString: strerror(error.errno))))
            }
        }
    }
}
