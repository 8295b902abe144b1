#if canImport(Glibc)
import Glibc
#endif
import CShims
import HikyakuConfig
import HikyakuSystem
import MailCore

/// master - the hikyaku process manager
///
/// Description: reads hikyaku.conf, prepares the spool, binds the SMTP
/// listeners and the service sockets in private/, and starts every program
/// with its sockets as inherited descriptors (fd 3 is a control pipe, fd 4
/// on the listening sockets, fd 1 and 2 a log pipe). It restarts a program
/// that dies (at once, then with growing delays if it keeps dying), sends
/// each program's log lines to syslog or `maillog_file`, and on SIGHUP has
/// every program finish its work and hand over to a fresh one started with
/// the new configuration; on SIGTERM it stops them all and leaves none
/// behind. It is a single-threaded poll loop: no Dispatch, no NIO.
///
/// Security: runs as root, not chrooted; it binds privileged ports and
/// starts programs that drop their own privileges right after exec. It
/// trusts only its configuration file and its own directories.
///
/// Configuration: `daemon_directory`, `queue_directory`, `mail_owner`,
/// `smtpd_listen`, `smtpd_process_limit`, `local_process_limit`,
/// `maillog_file`, `syslog_name`.
///
/// See also: smtpd(8), cleanup(8), qmgr(8), local(8), aliasd(8).
public final class MasterProcess {
    struct Child {
        let pid: pid_t
        let program: String
        let controlWrite: Int32
        let startedAt: Double
        /// The TCP ports of the listening sockets it was given: while a
        /// retiring child holds one, a failure to bind that port is the
        /// old generation not having let go yet, not a fault to report.
        var tcpPorts: Set<Int> = []
        var retiring = false
        /// The program said it serves (a `READY=1` line on its log pipe).
        var serving = false
    }

    struct LogPipe {
        let program: String
        let pid: pid_t
        var buffer: [UInt8] = []
    }

    var configuration: Configuration
    let configPath: String?
    var spool: SpoolLayout
    var owner: PasswdEntry?
    /// The setgid helper's group (setgid_group).
    var dropGroup: gid_t?
    var sink: LogSink
    /// When log lines last woke the run loop (monotonic seconds).
    var lastLogWake = 0.0
    var definitions: [ServiceDefinition] = []
    var listeners: [ServiceDefinition.Listener: Int32] = [:]
    var children: [pid_t: Child] = [:]
    var logPipes: [Int32: LogPipe] = [:]
    var notBefore: [String: Double] = [:]
    var quickFailures: [String: Int] = [:]
    var stopping = false
    var stopDeadline = 0.0
    var devNull: Int32 = -1
    var pidFileFD: Int32 = -1
    let signals: SignalDescriptor
    let systemd = Systemd()
    /// Sockets from systemd's socket activation, by role and address.
    var inherited: [Systemd.InheritedListener] = []
    /// READY=1 is owed to systemd: at start and after a reload, once every
    /// program of the new generation serves.
    var readyOwed = true
    var nextWatchdog = 0.0
    var nextStatus = 0.0

    public static func main() -> Never {
        var configPath: String? = nil
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "-c":
                configPath = arguments.next()
            case "-h", "--help":
                print("usage: master [-c /etc/hikyaku/hikyaku.conf]")
                exit(0)
            default:
                FileHandleStderr.write("master: unknown argument \(argument)\n")
                exit(64)
            }
        }
        do {
            let master = try MasterProcess(configPath: configPath)
            master.run()
        } catch {
            FileHandleStderr.write("master: fatal: \(error)\n")
            exit(1)
        }
    }

    init(configPath: String?) throws {
        self.configPath = configPath
        // Sockets from socket activation first (fd 3 on), then whatever
        // else the caller left open must not reach the programs we start.
        var activationNotes: [String] = []
        inherited = Systemd.takeListeners { activationNotes.append($0) }
        hk_cloexec_from(3)
        WallClock.prepareTimeZone()
        signal(SIGPIPE, SIG_IGN)
        // Block the signals we handle before anything else can start a thread.
        signals = try SignalDescriptor(signals: [SIGCHLD, SIGTERM, SIGINT, SIGHUP])
        configuration = try ConfigurationLoader.load(path: configPath)
        spool = SpoolLayout(root: configuration.string("queue_directory"))
        sink = Self.makeSink(configuration)
        for (key, line) in configuration.unknownKeys {
            log(4, "master", getpid(), "\(configuration.path), line \(line): unknown parameter \(key) ignored")
        }
        for note in activationNotes { log(4, "master", getpid(), note) }
        if Privilege.isRoot {
            let name = configuration.string("mail_owner")
            guard let entry = PasswdEntry.lookup(name: name), entry.uid != 0 else {
                throw ConfigError(file: configuration.path, line: configuration.line(of: "mail_owner"), key: "mail_owner",
                                  reason: "\(name) must be an existing user other than root (see Packaging/create-users.sh)")
            }
            owner = entry
            let group = configuration.string("setgid_group")
            guard let gid = GroupEntry.gid(named: group) else {
                throw ConfigError(file: configuration.path, line: configuration.line(of: "setgid_group"), key: "setgid_group",
                                  reason: "group \(group) does not exist (see Packaging/create-users.sh)")
            }
            dropGroup = gid
        }
        try SpoolPreparer.prepare(spool: spool, owner: owner, dropGroup: dropGroup)
        try lockPIDFile()
        SpoolPreparer.removeTemporaryFiles(spool: spool)
        devNull = try ProcessSpawner.moveAbove(try FileIO.open("/dev/null", O_RDWR))
        for (index, socket) in inherited.enumerated() {
            let fd = try ProcessSpawner.moveAbove(socket.fd)
            inherited[index] = Systemd.InheritedListener(fd: fd, role: socket.role, address: socket.address)
            listeners[.tcp(socket.address)] = fd
            log(6, "master", getpid(), "socket activation: \(socket.address) (\(socket.role)) passed by systemd")
        }
        definitions = ServiceDefinition.table(for: configuration, inherited: inheritedRoles)
        try checkPrograms()
        try bindListeners()
    }

    var inheritedRoles: [(role: String, address: String)] {
        inherited.map { ($0.role, $0.address) }
    }

    /// `maillog_file` when set; otherwise the journal under systemd, and
    /// syslog's /dev/log elsewhere.
    static func makeSink(_ configuration: Configuration) -> LogSink {
        let file = configuration.string("maillog_file")
        let destination: LogSink.Destination = !file.isEmpty ? .file(file) : Systemd.journalAvailable ? .journal : .syslog
        return LogSink(destination: destination, hostname: configuration.string("myhostname"),
                       journal: Systemd.sendToJournal)
    }

    func log(_ severity: Int, _ program: String, _ pid: pid_t, _ text: String) {
        sink.emit(severity: severity, ident: "\(configuration.string("syslog_name"))/\(program)", pid: pid,
                  text: MailLog.prefix(severity: severity) + text)
    }

    func info(_ text: String) { log(6, "master", getpid(), text) }
    func warning(_ text: String) { log(4, "master", getpid(), text) }

    func lockPIDFile() throws {
        let path = spool.masterPIDFile
        let fd = try ProcessSpawner.moveAbove(try FileIO.open(path, O_RDWR | O_CREAT, mode: 0o644))
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let other = (try? FileIO.readAll(fd)).map { String(decoding: $0, as: UTF8.self).trimming(" \n") } ?? "?"
            throw SystemError(errno: EEXIST, operation: "the hikyaku master is already running (pid \(other)); lock", path: path)
        }
        _ = ftruncate(fd, 0)
        try FileIO.writeAll(fd, Array("\(getpid())\n".utf8), path: path)
        pidFileFD = fd
    }

    func programPath(_ program: String) -> String {
        configuration.string("daemon_directory") + "/" + program
    }

    func checkPrograms() throws {
        for definition in definitions {
            let path = programPath(definition.program)
            guard access(path, X_OK) == 0 else {
                throw ConfigError(file: configuration.path, line: configuration.line(of: "daemon_directory"),
                                  key: "daemon_directory", reason: "\(path) is missing or not executable")
            }
        }
    }

    // MARK: Sockets

    /// Binds every listener the definitions want that is not bound yet, and
    /// closes the master's copy of those no longer wanted (first, so an
    /// address can move, as 127.0.0.1:25 to 0.0.0.0:25). At start a failure
    /// is fatal; on reload (`tolerant`) it is logged, the listener stays
    /// unbound, and `retryBinding` tries again: a retiring smtpd may still
    /// hold the old socket for a moment. A program whose listeners are not
    /// all bound is not started, so none gets a hole in its descriptors.
    func bindListeners(tolerant: Bool = false) throws {
        var wanted: Set<ServiceDefinition.Listener> = []
        for definition in definitions { wanted.formUnion(definition.listeners) }
        let passed = Set(inherited.map { ServiceDefinition.Listener.tcp($0.address) })
        for (listener, fd) in listeners where !wanted.contains(listener) && !passed.contains(listener) {
            Glibc.close(fd)
            listeners[listener] = nil
        }
        for listener in unbound.keys where !wanted.contains(listener) { unbound[listener] = nil }
        for listener in wanted where listeners[listener] == nil {
            do {
                listeners[listener] = try ProcessSpawner.moveAbove(try bind(listener))
                if unbound.removeValue(forKey: listener) != nil {
                    info("listening on \(listener.description)")
                    restartServing(listener)
                }
            } catch {
                guard tolerant else { throw error }
                let now = WallClock.monotonic()
                // Quiet for the first second, and for up to ten while a
                // retiring smtpd still holds the port: the usual case is an
                // address the old generation has not closed yet (it does
                // within milliseconds, later on a busy machine).
                var state = unbound[listener] ?? UnboundListener(since: now, nextLog: now + 1)
                if now >= state.nextLog, !(heldByRetiring(listener) && now < state.since + 10) {
                    warning("cannot listen on \(listener.description): \(error); trying again")
                    state.nextLog = now + 60
                }
                unbound[listener] = state
            }
        }
        nextBindAttempt = unbound.isEmpty ? nil : WallClock.monotonic() + bindRetryDelay()
    }

    func heldByRetiring(_ listener: ServiceDefinition.Listener) -> Bool {
        guard case .tcp(let address) = listener, let (_, port) = Sockets.parseHostPort(address) else { return false }
        return children.values.contains { $0.retiring && $0.tcpPorts.contains(port) }
    }

    func bind(_ listener: ServiceDefinition.Listener) throws -> Int32 {
        switch listener {
        case .tcp(let address):
            return try Sockets.listenTCP(address)
        case .unix(let service):
            let path = spool.socket(service)
            let fd = try Sockets.listenUnix(path, mode: 0o600)
            if let owner {
                do { try FileIO.chown(path, uid: owner.uid, gid: owner.gid) } catch { Glibc.close(fd); throw error }
            }
            return fd
        case .publicUnix(let service):
            // pickup: the setgid helper's group only; showq: anyone (mailq).
            let path = spool.socket(service)
            let fd = try Sockets.listenUnix(path, mode: service == .pickup ? 0o660 : 0o666)
            if let owner {
                do { try FileIO.chown(path, uid: owner.uid, gid: dropGroup ?? owner.gid) } catch { Glibc.close(fd); throw error }
            }
            return fd
        }
    }

    struct UnboundListener {
        let since: Double
        var nextLog: Double
    }

    /// Listeners a reload could not bind yet, retried from the poll loop.
    var unbound: [ServiceDefinition.Listener: UnboundListener] = [:]
    var nextBindAttempt: Double?

    /// Quickly at first (the old smtpd closes its sockets within
    /// milliseconds of being told to drain), then every 5 seconds.
    func bindRetryDelay() -> Double {
        let oldest = unbound.values.map(\.since).min() ?? WallClock.monotonic()
        return WallClock.monotonic() - oldest < 10 ? 0.1 : 5
    }

    func retryBinding() {
        guard let due = nextBindAttempt, WallClock.monotonic() >= due, !stopping else { return }
        try? bindListeners(tolerant: true)
        notifyReadyIfServing()
    }

    /// A program is started only when it has a socket to serve: all its
    /// sockets, or for smtpd those of its addresses a reload could bind.
    func listenersBound(_ definition: ServiceDefinition) -> Bool {
        definition.listeners.isEmpty || definition.listeners.contains { listeners[$0] != nil }
    }

    /// A socket bound late: the programs that serve it start again with it.
    func restartServing(_ listener: ServiceDefinition.Listener) {
        for definition in definitions where definition.listeners.contains(listener) {
            for (pid, child) in children where child.program == definition.program && !child.retiring {
                children[pid]!.retiring = true
                writeControl(child.controlWrite, "R")
            }
        }
    }

    // MARK: Children

    func spawn(_ definition: ServiceDefinition) {
        let path = programPath(definition.program)
        do {
            let control = try Pipe()
            let logPipe = try Pipe()
            var fdMap: [(source: Int32, target: Int32)] = [
                (devNull, 0), (logPipe.writeEnd, 1), (logPipe.writeEnd, 2), (control.readEnd, 3),
            ]
            // Only bound sockets are passed, with their roles, so fd 4 on
            // has no holes (listenersBound: at least one is bound).
            var roles: [String] = []
            var tcpPorts: Set<Int> = []
            for (index, listener) in definition.listeners.enumerated() {
                guard let fd = listeners[listener] else { continue }
                fdMap.append((fd, Int32(fdMap.count)))
                if case .tcp(let address) = listener, let (_, port) = Sockets.parseHostPort(address) { tcpPorts.insert(port) }
                if index < definition.listenerRoles.count { roles.append(definition.listenerRoles[index]) }
            }
            var environment = [
                "HIKYAKU_MASTER=1",
                "HIKYAKU_LISTEN_FDS=\(fdMap.count - 4)",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C",
            ]
            if !roles.isEmpty {
                environment.append("HIKYAKU_LISTEN_ROLES=" + roles.joined(separator: ","))
            }
            if let tz = getenv("TZ") { environment.append("TZ=\(String(cString: tz))") }
            var arguments = [definition.program]
            if let configPath { arguments += ["-c", configPath] }
            if configuration.list("debug_programs").contains(definition.program) { arguments.append("-v") }
            let pid = try ProcessSpawner.spawn(path: path, arguments: arguments, environment: environment, fdMap: fdMap)
            Glibc.close(control.readEnd)
            Glibc.close(logPipe.writeEnd)
            _ = hk_set_nonblocking(logPipe.readEnd, 1)
            _ = hk_set_nonblocking(control.writeEnd, 1)
            children[pid] = Child(pid: pid, program: definition.program, controlWrite: control.writeEnd,
                                  startedAt: WallClock.monotonic(), tcpPorts: tcpPorts)
            logPipes[logPipe.readEnd] = LogPipe(program: definition.program, pid: pid)
        } catch {
            warning("cannot start \(path): \(error)")
            notBefore[definition.program] = WallClock.monotonic() + 5
        }
    }

    /// Starts whatever is missing: after start, a crash or a reload.
    func ensureRunning() {
        guard !stopping else { return }
        let now = WallClock.monotonic()
        for definition in definitions {
            if let wait = notBefore[definition.program], wait > now { continue }
            guard listenersBound(definition) else { continue }
            let mine = children.values.filter { $0.program == definition.program }
            if definition.singleton && !mine.isEmpty { continue }
            let active = mine.filter { !$0.retiring }.count
            if active < definition.processes {
                for _ in active..<definition.processes { spawn(definition) }
            }
        }
    }

    func childExited(_ pid: pid_t, _ termination: ProcessSpawner.Termination) {
        guard let child = children.removeValue(forKey: pid) else { return }
        Glibc.close(child.controlWrite)
        guard !stopping, !child.retiring else { return }
        let lived = WallClock.monotonic() - child.startedAt
        warning("process \(programPath(child.program)) pid \(pid) \(termination)")
        // A program killed from outside (the OOM killer, an admin, a test)
        // is restarted at once. One that fails by itself soon after start
        // (an error exit or a crash) is restarted with doubling delays, to
        // 30 s, so a broken configuration does not spin the machine.
        let failedByItself: Bool
        switch termination {
        case .exited(let code): failedByItself = code != 0
        case .signaled(let sig, _): failedByItself = ![SIGKILL, SIGTERM, SIGINT, SIGHUP].contains(sig)
        }
        let failures = failedByItself && lived < 10 ? (quickFailures[child.program] ?? 0) + 1 : 0
        quickFailures[child.program] = failures
        var delay = failures <= 1 ? 0 : min(30, 0.1 * pow(2, Double(failures - 2)))
        if lived < 0.1 { delay = max(delay, 0.1) }
        if failures > 1 {
            warning("\(programPath(child.program)): restarting in \(DelayFormat.format(delay)) s")
        }
        notBefore[child.program] = WallClock.monotonic() + delay
    }

    func reapChildren() {
        while let (pid, termination) = ProcessSpawner.reap() {
            childExited(pid, termination)
        }
    }

    // MARK: Logs from children

    func readLogPipe(_ fd: Int32) {
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n > 0 {
                logPipes[fd]?.buffer.append(contentsOf: chunk[0..<n])
                emitLines(fd, final: false)
                continue
            }
            if n == 0 {
                emitLines(fd, final: true)
                Glibc.close(fd)
                logPipes[fd] = nil
            }
            return
        }
    }

    func emitLines(_ fd: Int32, final: Bool) {
        guard var state = logPipes[fd] else { return }
        var start = state.buffer.startIndex
        while let newline = state.buffer[start...].firstIndex(of: 10) {
            emit(Array(state.buffer[start..<newline]), state)
            start = newline + 1
        }
        state.buffer.removeSubrange(..<start)
        if final && !state.buffer.isEmpty || state.buffer.count > 8192 {
            emit(state.buffer, state)
            state.buffer.removeAll()
        }
        logPipes[fd] = state
    }

    func emit(_ line: [UInt8], _ state: LogPipe) {
        if line == Self.readyLine {
            // Not a log line: the program serves (DaemonSkeleton.announceReady).
            children[state.pid]?.serving = true
            notifyReadyIfServing()
            return
        }
        var severity = 6
        var text = line[...]
        if text.first == UInt8(ascii: "<"), let close = text.firstIndex(of: UInt8(ascii: ">")),
           close - text.startIndex <= 2, let value = Int(String(decoding: text[(text.startIndex + 1)..<close], as: UTF8.self)) {
            severity = min(7, max(0, value))
            text = text[(close + 1)...]
        } else {
            // Not a structured line (a crash message, for example): a warning.
            severity = 4
        }
        guard !text.isEmpty else { return }
        sink.emit(severity: severity, ident: "\(configuration.string("syslog_name"))/\(state.program)", pid: state.pid,
                  text: String(decoding: text, as: UTF8.self))
    }

    // MARK: systemd

    static let readyLine = Array("READY=1".utf8)

    /// Every program of the current generation has said it serves, so every
    /// listener accepts connections: READY=1, once per start or reload.
    func notifyReadyIfServing() {
        guard readyOwed, !stopping else { return }
        // A socket a reload cannot bind holds READY=1 up for 10 seconds at
        // most; after that the status line names it.
        let now = WallClock.monotonic()
        guard !unbound.values.contains(where: { now - $0.since < 10 }) else { return }
        for definition in definitions where listenersBound(definition) {
            guard children.values.contains(where: { $0.program == definition.program && !$0.retiring && $0.serving }) else {
                return
            }
        }
        readyOwed = false
        systemd.ready(status: statusLine())
        nextStatus = WallClock.monotonic() + Self.statusInterval
    }

    static let statusInterval = 60.0

    /// The STATUS= line: programs running and messages in the queue.
    func statusLine() -> String {
        var queued = 0
        for queue in [SpoolLayout.Queue.maildrop, .incoming, .active, .deferred, .hold] {
            queued += ((try? FileIO.listDirectory(spool.directory(queue))) ?? []).count
        }
        var line = "\(children.count) processes; \(queued) message\(queued == 1 ? "" : "s") in the queue"
        if !unbound.isEmpty {
            line += "; cannot listen on " + unbound.keys.map(\.description).sorted().joined(separator: ", ")
        }
        return line
    }

    /// Watchdog pings and the status line, when due.
    func systemdTimers() {
        guard systemd.notifying else { return }
        let now = WallClock.monotonic()
        if let interval = systemd.watchdogInterval, now >= nextWatchdog {
            systemd.watchdog()
            nextWatchdog = now + interval
        }
        if !readyOwed && !stopping && now >= nextStatus {
            systemd.status(statusLine())
            nextStatus = now + Self.statusInterval
        }
    }

    // MARK: Signals

    func reload() {
        systemd.reloading()
        readyOwed = true
        let fresh: Configuration
        do {
            fresh = try ConfigurationLoader.load(path: configPath)
        } catch {
            warning("reload: \(error); keeping the running configuration")
            // The running generation goes on serving.
            readyOwed = false
            systemd.ready(status: "reload failed: \(error)")
            return
        }
        configuration = fresh
        sink = Self.makeSink(configuration)
        info("reload -- version \(HikyakuVersion.string), configuration \(configuration.path)")
        definitions = ServiceDefinition.table(for: configuration, inherited: inheritedRoles)
        do {
            try checkPrograms()
            if owner != nil { try SpoolPreparer.copyNameServiceFiles(into: spool.root + "/etc") }
        } catch {
            warning("reload: \(error)")
        }
        // The old generation stops accepting first, so an address that moves
        // (127.0.0.1:25 to 0.0.0.0:25) is free for the new one to bind.
        for pid in children.keys {
            children[pid]!.retiring = true
            writeControl(children[pid]!.controlWrite, "R")
        }
        unbound.removeAll()
        try? bindListeners(tolerant: true)
        notBefore.removeAll()
        ensureRunning()
    }

    func writeControl(_ fd: Int32, _ byte: Character) {
        var b = byte.asciiValue!
        _ = write(fd, &b, 1)
    }

    func beginStop() {
        guard !stopping else { return }
        stopping = true
        stopDeadline = WallClock.monotonic() + 10
        systemd.stopping()
        info("terminating on signal")
        for child in children.values { writeControl(child.controlWrite, "S") }
    }

    func finishStop() -> Never {
        for child in children.values {
            // Each child leads its own process group: take any helpers too.
            kill(-child.pid, SIGKILL)
            kill(child.pid, SIGKILL)
        }
        while !children.isEmpty {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid < 0 { break }
            children[pid] = nil
        }
        for fd in Array(logPipes.keys) { readLogPipe(fd) }
        _ = unlink(spool.masterPIDFile)
        exit(0)
    }

    // MARK: Event loop

    func run() -> Never {
        if owner == nil {
            info("running as uid \(geteuid()) without privilege separation: every program runs as this user")
        }
        info("daemon started -- version \(HikyakuVersion.string), configuration \(configuration.path)")
        ensureRunning()
        while true {
            if stopping && (children.isEmpty || WallClock.monotonic() >= stopDeadline) {
                finishStop()
            }
            var fds = [pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0)]
            let pipes = Array(logPipes.keys)
            for fd in pipes { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let timeout = nextTimeout()
            let due = WallClock.monotonic() + Double(timeout) / 1000
            let rc = poll(&fds, nfds_t(fds.count), timeout)
            if rc < 0 && errno != EINTR {
                warning("poll: \(SystemError("poll", "").description)")
                usleep(100_000)
            }
            if fds[0].revents != 0 {
                for s in signals.drain() {
                    switch s {
                    case SIGCHLD: reapChildren()
                    case SIGHUP: if !stopping { reload() }
                    case SIGTERM, SIGINT: beginStop()
                    default: break
                    }
                }
            }
            if fds[0].revents == 0 && rc > 0 {
                // Under load every delivery's line would wake the master on
                // its own (a few thousand wake-ups a second for a big list):
                // when lines came less than 50 ms ago, let 5 ms of them
                // gather first. Signals are not kept waiting by more.
                let now = WallClock.monotonic()
                if now - lastLogWake < 0.05 { usleep(5_000) }
                lastLogWake = now
            }
            sink.batch {
                for (offset, fd) in pipes.enumerated() where fds[offset + 1].revents != 0 {
                    readLogPipe(fd)
                }
            }
            // Woken only by log lines (hundreds a second under load) before
            // any deadline: nothing else can have changed.
            if fds[0].revents == 0 && rc > 0 && !stopping && WallClock.monotonic() < due { continue }
            reapChildren()
            retryBinding()
            ensureRunning()
            systemdTimers()
        }
    }

    func nextTimeout() -> Int32 {
        let now = WallClock.monotonic()
        var wait = 60.0
        if stopping { wait = min(wait, max(0, stopDeadline - now)) }
        for deadline in notBefore.values where deadline > now { wait = min(wait, deadline - now) }
        if let due = nextBindAttempt { wait = min(wait, max(0, due - now)) }
        if systemd.notifying {
            if systemd.watchdogInterval != nil { wait = min(wait, max(0, nextWatchdog - now)) }
            if !readyOwed { wait = min(wait, max(0, nextStatus - now)) }
        }
        return Int32(wait * 1000) + 1
    }
}

/// Writes to stderr before logging is set up.
enum FileHandleStderr {
    static func write(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress!, $0.count) }
    }
}
