#if canImport(Glibc)
import Glibc
#endif
import CShims

/// The only place in hikyaku that changes root directory or process
/// credentials (chroot, setgroups, setgid, setuid, setegid, seteuid). `make check-privilege`
/// and CI fail if any other source file calls these functions.
///
/// The operations:
/// - ``dropPermanently(to:chrootDirectory:)``: a daemon's one-way drop to the
///   mail owner, optionally into the spool chroot. Called by the daemon
///   skeleton right after exec, before any thread is started.
/// - ``withEffectiveIdentity(_:_:)``: local's temporary switch of the
///   *effective* ids to a recipient for one delivery (Postfix's way). Only
///   allowed in a single-threaded process, which it checks every time.
/// - ``relinquishSetID()``: a set-id command (hikyaku-drop) giving up the ids
///   its set-id bit lent it, before it acts on its caller's say-so.
///
/// Order matters and is the same as Postfix's chroot_uid(): resolve the user
/// before chroot (the passwd file is outside), chroot and chdir("/"), then
/// supplementary groups, then the group id, and the user id last, because
/// after setuid no further change is possible.
public enum Privilege {
    public struct Identity: Sendable, Equatable {
        public var name: String
        public var uid: uid_t
        public var gid: gid_t
        public var groups: [gid_t]

        public init(name: String, uid: uid_t, gid: gid_t, groups: [gid_t]) {
            self.name = name
            self.uid = uid
            self.gid = gid
            self.groups = groups
        }
    }

    public static var isRoot: Bool { geteuid() == 0 }

    /// chroot (when asked), then give up root for good and verify it is gone.
    public static func dropPermanently(to identity: Identity, chrootDirectory: String?) throws(SystemError) {
        precondition(identity.uid != 0, "dropping privileges to uid 0 is not a drop")
        try requireSingleThreaded("privilege drop")
        if let chrootDirectory {
            guard chdir(chrootDirectory) == 0 else { throw SystemError("chdir", chrootDirectory) }
            guard chroot(chrootDirectory) == 0 else { throw SystemError("chroot", chrootDirectory) }
            guard chdir("/") == 0 else { throw SystemError("chdir", "/ after chroot") }
        }
        let groups = identity.groups.isEmpty ? [identity.gid] : identity.groups
        guard setgroups(groups.count, groups) == 0 else { throw SystemError("setgroups", identity.name) }
        // For a process with root's effective id, setgid and setuid set the
        // real, effective and saved ids alike (POSIX), so the drop is permanent.
        guard setgid(identity.gid) == 0 else { throw SystemError("setgid", identity.name) }
        guard setuid(identity.uid) == 0 else { throw SystemError("setuid", identity.name) }

        // Verify, as qmail and Postfix do: every id is the target, and root
        // cannot be regained by any route.
        guard getuid() == identity.uid, geteuid() == identity.uid,
              getgid() == identity.gid, getegid() == identity.gid
        else { throw SystemError(errno: EPERM, operation: "verify privilege drop", path: identity.name) }
        if setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 {
            throw SystemError(errno: EPERM, operation: "verify privilege drop (root could be regained)", path: identity.name)
        }
        if chrootDirectory != nil {
            var buffer = [CChar](repeating: 0, count: 8)
            guard getcwd(&buffer, buffer.count) != nil, buffer[0] == 0x2F, buffer[1] == 0 else {
                throw SystemError(errno: EPERM, operation: "verify chroot", path: chrootDirectory!)
            }
        }
        // Allow core dumps of the unprivileged process for debugging;
        // credential changes clear the flag.
        _ = hk_set_dumpable(1)
    }

    /// Runs `body` with the effective uid, gid and groups of `identity`, then
    /// returns to root. The real and saved ids stay root, so the switch back
    /// works; nothing else may run meanwhile, hence the thread check.
    public static func withEffectiveIdentity<T>(_ identity: Identity, _ body: () throws -> T) throws -> T {
        precondition(geteuid() == 0, "withEffectiveIdentity needs root")
        try requireSingleThreaded("effective identity switch")
        let groups = identity.groups.isEmpty ? [identity.gid] : identity.groups
        guard setgroups(groups.count, groups) == 0 else { throw SystemError("setgroups", identity.name) }
        guard setegid(identity.gid) == 0 else {
            restoreRoot()
            throw SystemError("setegid", identity.name)
        }
        guard seteuid(identity.uid) == 0 else {
            restoreRoot()
            throw SystemError("seteuid", identity.name)
        }
        defer { restoreRoot() }
        return try body()
    }

    static func restoreRoot() {
        // Failing to get root back would leave the process acting for a user
        // it no longer serves; that must never continue.
        guard seteuid(0) == 0,
              setegid(0) == 0,
              setgroups(0, nil) == 0 else {
            fatalError("cannot restore root privileges after a delivery")
        }
    }

    /// Starts `path` with every id of `identity` (real, effective, saved,
    /// groups), never root: local's command deliveries. The child is forked
    /// from a single-threaded process (checked), changes identity, directory
    /// and descriptors, and execs; it runs nothing else. Returns the pid.
    public static func spawnAs(_ identity: Identity, path: String, arguments: [String], environment: [String],
                               directory: String, stdin: Int32, stdout: Int32) throws -> pid_t {
        precondition(identity.uid != 0, "commands are never run as root")
        try requireSingleThreaded("command start")
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        let groups = identity.groups.isEmpty ? [identity.gid] : identity.groups
        let pid = fork()
        if pid < 0 { throw SystemError("fork", path) }
        if pid == 0 {
            // The child: only system calls from here to exec.
            if setgroups(groups.count, groups) != 0 || setgid(identity.gid) != 0 || setuid(identity.uid) != 0
                || getuid() != identity.uid || geteuid() != identity.uid || setuid(0) == 0 {
                _exit(126)
            }
            if chdir(directory) != 0 { _ = chdir("/") }
            if dup2(stdin, 0) < 0 || dup2(stdout, 1) < 0 || dup2(stdout, 2) < 0 { _exit(126) }
            // Nothing of local's (its sockets, the master's pipe) reaches the command.
            hk_close_from(3)
            _ = execve(path, argv, envp)
            _exit(127)
        }
        return pid
    }

    /// Gives up for good what a set-uid or set-gid bit lent the process: the
    /// real, effective and saved gid all become the real gid, then the same
    /// for the uid, and the lent ids are verified gone. hikyaku-drop does this
    /// before it acts on a configuration its caller owns, so that the
    /// caller's choice of spool gets nothing the caller does not have. A
    /// process without set-id ids is left as it is.
    public static func relinquishSetID() throws(SystemError) {
        let lentGroup = getegid(), lentUser = geteuid()
        let gid = getgid(), uid = getuid()
        // setregid/setreuid with the real id set also set the saved id
        // (POSIX), so the lent id cannot be taken back.
        if lentGroup != gid {
            guard setregid(gid, gid) == 0 else { throw SystemError("setregid", "relinquish set-gid") }
        }
        if lentUser != uid {
            guard setreuid(uid, uid) == 0 else { throw SystemError("setreuid", "relinquish set-uid") }
        }
        guard getegid() == gid, geteuid() == uid,
              lentGroup == gid || setegid(lentGroup) != 0,
              lentUser == uid || seteuid(lentUser) != 0
        else { throw SystemError(errno: EPERM, operation: "verify relinquished set-id privileges", path: "") }
    }

    /// Drops supplementary groups a root daemon inherited (local keeps root).
    public static func clearSupplementaryGroups() throws(SystemError) {
        guard geteuid() == 0 else { return }
        guard setgroups(0, nil) == 0 else { throw SystemError("setgroups", "root") }
    }

    static func requireSingleThreaded(_ what: String) throws(SystemError) {
        let threads = hk_thread_count()
        if threads != 1 {
            // An unknown count (no /proc) fails closed, like a known bad one.
            let count = threads < 0 ? "an unknown number of" : String(threads)
            throw SystemError(errno: EDEADLK, operation: "\(what) with \(count) threads running", path: "")
        }
    }
}
