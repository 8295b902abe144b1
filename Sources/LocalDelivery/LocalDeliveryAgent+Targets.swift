#if canImport(Glibc)
import Glibc
#endif
import CShims
import HikyakuSystem
import MailCore
import SendmailRules

/// File and command targets, .forward and :include: files: each handled
/// with the identity of whoever named it, never root's.
extension LocalDeliveryAgent {
    /// Who a file or command target runs as: the user of a .forward, or the
    /// owner of the aliases or include file; `default_privs` (nobody) when
    /// that owner is root.
    func identity(for source: AliasExpansion.Source) -> PasswdEntry? {
        let owner: uid_t?
        switch source {
        case .forward(let user):
            // root's own .forward runs as default_privs too.
            if let entry = users.user(named: user), entry.uid != 0 { return entry }
            owner = 0
        case .aliases:
            owner = FileIO.stat(context.configuration.string("alias_file"))?.st_uid
        case .include(let path):
            owner = FileIO.stat(path)?.st_uid
        }
        if let owner, owner != 0, let entry = PasswdEntry.lookup(uid: owner) { return entry }
        return users.user(named: context.configuration.string("default_privs"))
    }

    /// A list file may be named by an alias only if nobody but its owner can
    /// change it (sendmail refuses group- and world-writable include files).
    static func safeListFile(_ path: String) -> AliasExpansion.ListFileError? {
        guard let st = FileIO.stat(path) else { return AliasExpansion.ListFileError("Cannot open \(path): No such file or directory") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return AliasExpansion.ListFileError("\(path): not a regular file") }
        guard st.st_mode & 0o022 == 0 else { return AliasExpansion.ListFileError("\(path): group or world writable; ignored") }
        return nil
    }

    /// An include file, read with the authority of whoever named it: the
    /// owner of the aliases file or of the include file that names it
    /// (`default_privs` for root's), or a .forward's user. That is sendmail's
    /// rule (an include is read as the controlling user of the address that
    /// named it), and it means nobody can have local read a file they could
    /// not read themselves: whoever writes an include line lends only their
    /// own rights.
    func readIncludeFile(_ path: String, source: AliasExpansion.Source) -> Result<[String], AliasExpansion.ListFileError> {
        let read: () -> Result<[String], AliasExpansion.ListFileError> = {
            if let problem = Self.safeListFile(path) { return .failure(problem) }
            do throws(SystemError) {
                let text = String(decoding: try FileIO.readFile(path, limit: 4 << 20), as: UTF8.self)
                return .success(AliasExpansion.targets(inListFile: text))
            } catch {
                return .failure(AliasExpansion.ListFileError("Cannot open \(path): \(String(cString: strerror(error.errno)))"))
            }
        }
        guard context.privilegeSeparated else { return read() }
        // An include inside an include is read as the owner of the outer
        // include file: `source` is the file that named this one.
        guard let identity = identity(for: source) else {
            return .failure(AliasExpansion.ListFileError("Cannot open \(path): no user to read it as"))
        }
        return (try? Privilege.withEffectiveIdentity(users.identity(of: identity), read))
            ?? .failure(AliasExpansion.ListFileError("Cannot open \(path): cannot become \(identity.name)"))
    }

    /// ~user/.forward, read as the user; ignored (with a warning) unless it
    /// is a plain file of the user's or root's that no one else can write.
    func readForwardFile(of user: String) -> [String]? {
        guard let entry = users.user(named: user) else { return nil }
        let path = entry.home + "/.forward"
        let read: () -> [String]? = {
            guard let st = FileIO.stat(path) else { return nil }
            guard (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == entry.uid || st.st_uid == 0, st.st_mode & 0o022 == 0 else {
                self.logger.warning("\(path): not owned by \(user) or writable by others; ignored")
                return nil
            }
            guard let bytes = try? FileIO.readFile(path, limit: 1 << 20) else { return nil }
            return AliasExpansion.targets(inListFile: String(decoding: bytes, as: UTF8.self))
        }
        guard context.privilegeSeparated else { return read() }
        return (try? Privilege.withEffectiveIdentity(users.identity(of: entry), read)) ?? nil
    }

    // MARK: Files

    func deliverToFile(_ path: String, source: AliasExpansion.Source, recipient: String, sender: String,
                       content: [UInt8]) -> DeliveryOutcome {
        if path == "/dev/null" {
            return .delivered(EnhancedStatusCode(2, 0, 0), "delivered to file: /dev/null")
        }
        let entry = MailboxFormat.mboxEntry(sender: sender, recipient: recipient,
                                            date: WallClock.localTime(WallClock.seconds()), content: content)
        guard context.privilegeSeparated else {
            return appendToFile(path, entry: entry)
        }
        guard let owner = identity(for: source), owner.uid != 0 else {
            return .deferred(EnhancedStatusCode(4, 3, 0), "no unprivileged user to write \(path) as (default_privs)")
        }
        do {
            return try Privilege.withEffectiveIdentity(users.identity(of: owner)) { appendToFile(path, entry: entry) }
        } catch {
            return .deferred(EnhancedStatusCode(4, 3, 0), "cannot become \(owner.name): \(error)")
        }
    }

    func appendToFile(_ path: String, entry: [UInt8]) -> DeliveryOutcome {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o600)
        guard fd >= 0 else {
            return .deferred(EnhancedStatusCode(4, 2, 0), "cannot open file \(path): \(SystemError("open", path).description)")
        }
        defer { close(fd) }
        _ = hk_set_nonblocking(fd, 0)
        guard let st = try? FileIO.fstat(fd, path: path), (st.st_mode & S_IFMT) == S_IFREG else {
            return .bounced(EnhancedStatusCode(5, 2, 0), "\(path) is not a regular file")
        }
        let deadline = WallClock.monotonic() + writer.lockTimeout
        while hk_lock_file(fd, hk_lock_type_write(), 0) != 0 {
            guard WallClock.monotonic() < deadline else {
                return .deferred(EnhancedStatusCode(4, 2, 0), "cannot lock \(path): locked too long by another program")
            }
            usleep(100_000)
        }
        defer { _ = hk_lock_file(fd, hk_lock_type_unlock(), 0) }
        let oldSize = Int((try? FileIO.fstat(fd, path: path))?.st_size ?? 0)
        do {
            try FileIO.writeAll(fd, entry, path: path)
            try FileIO.fsync(fd, path: path)
        } catch {
            _ = ftruncate(fd, off_t(oldSize))
            return .deferred(EnhancedStatusCode(4, 2, error.isNoSpace ? 2 : 0), "cannot append to \(path): \(error)")
        }
        return .delivered(EnhancedStatusCode(2, 0, 0), "delivered to file: \(path)")
    }

    // MARK: Commands

    /// Runs `|command` through /bin/sh with the message on its standard
    /// input, as the target's owner, with a time limit. Exit 0 delivers,
    /// 75 (EX_TEMPFAIL) defers, anything else bounces with the output.
    func deliverToCommand(_ raw: String, source: AliasExpansion.Source, recipient: String, sender: String,
                          content: [UInt8]) -> DeliveryOutcome {
        let command = String(raw.dropFirst()).trimming(" \t")
        guard !command.isEmpty else { return .bounced(EnhancedStatusCode(5, 3, 0), "empty command") }
        let user: PasswdEntry
        if context.privilegeSeparated {
            guard let owner = identity(for: source), owner.uid != 0 else {
                return .deferred(EnhancedStatusCode(4, 3, 0), "no unprivileged user to run \(command) as (default_privs)")
            }
            user = owner
        } else {
            guard let me = PasswdEntry.lookup(uid: geteuid()) else {
                return .deferred(EnhancedStatusCode(4, 3, 0), "cannot find the current user")
            }
            user = me
        }
        let input = hk_memfd("hikyaku-message")
        let output = hk_memfd("hikyaku-output")
        guard input >= 0, output >= 0 else {
            return .deferred(EnhancedStatusCode(4, 3, 0), "cannot create a pipe for the command")
        }
        defer { close(input); close(output) }
        do {
            try FileIO.writeAll(input, MailboxFormat.deliveryHeaders(sender: sender, recipient: recipient) + content)
        } catch {
            return .deferred(EnhancedStatusCode(4, 3, 0), "cannot pass the message to the command: \(error)")
        }
        _ = lseek(input, 0, SEEK_SET)
        let local = recipient.split(separator: "@").first.map(String.init) ?? recipient
        let environment = [
            "PATH=/usr/bin:/bin", "SHELL=/bin/sh", "HOME=\(user.home)", "USER=\(user.name)", "LOGNAME=\(user.name)",
            "SENDER=\(sender)", "RECIPIENT=\(recipient)", "LOCAL=\(local)",
        ]
        let pid: pid_t
        do {
            if context.privilegeSeparated {
                pid = try Privilege.spawnAs(users.identity(of: user), path: "/bin/sh", arguments: ["sh", "-c", command],
                                            environment: environment, directory: user.home, stdin: input, stdout: output)
            } else {
                pid = try ProcessSpawner.spawn(path: "/bin/sh", arguments: ["sh", "-c", command], environment: environment,
                                               fdMap: [(try ProcessSpawner.moveAbove(dup(input)), 0),
                                                       (try ProcessSpawner.moveAbove(dup(output)), 1),
                                                       (try ProcessSpawner.moveAbove(dup(output)), 2)])
            }
        } catch {
            return .deferred(EnhancedStatusCode(4, 3, 0), "cannot run \(command): \(error)")
        }
        let limit = Double(max(1, context.configuration.seconds("command_time_limit")))
        let deadline = WallClock.monotonic() + limit
        var status: Int32 = 0
        while true {
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid { break }
            if rc < 0 && errno != EINTR { break }
            if WallClock.monotonic() >= deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                return .deferred(EnhancedStatusCode(4, 3, 0), "command time limit exceeded: \(command)")
            }
            usleep(5_000)
        }
        _ = lseek(output, 0, SEEK_SET)
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = buffer.withUnsafeMutableBytes { read(output, $0.baseAddress!, $0.count) }
        let said = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .joined(separator: " ").trimming(" \t") : ""
        let tail = said.isEmpty ? "" : ": \(said)"
        switch ProcessSpawner.Termination(status: status) {
        case .exited(0):
            return .delivered(EnhancedStatusCode(2, 0, 0), "delivered to command: \(command)")
        case .exited(75):
            return .deferred(EnhancedStatusCode(4, 3, 0), "temporary failure of command \(command)\(tail)")
        case .exited(let code):
            return .bounced(EnhancedStatusCode(5, 3, 0), "Command died with status \(code): \(command)\(tail)")
        case .signaled(let signal, _):
            return .deferred(EnhancedStatusCode(4, 3, 0), "command \(command) killed by signal \(signal)")
        }
    }
}
