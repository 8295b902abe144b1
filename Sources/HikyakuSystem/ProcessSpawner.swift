#if canImport(Glibc)
import Glibc
#endif
import CShims

/// Starts programs with posix_spawn: descriptors placed at fixed numbers,
/// every signal at its default, an empty signal mask, a process group of its
/// own. Foundation's Process and swift-subprocess close descriptors above 2,
/// which the master needs to pass, hence this wrapper.
public enum ProcessSpawner {
    /// `fdMap` pairs a descriptor of this process with the number it gets in
    /// the child. Sources must be close-on-exec and above every target, which
    /// ``moveAbove(_:minimum:)`` arranges. Descriptors not mapped are closed
    /// in the child only because they are close-on-exec: the master marks
    /// everything it inherited that way at start and opens all its own so.
    public static func spawn(path: String, arguments: [String], environment: [String],
                             fdMap: [(source: Int32, target: Int32)]) throws(SystemError) -> pid_t {
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        let sources = fdMap.map(\.source)
        let targets = fdMap.map(\.target)
        let rc = argv.withUnsafeBufferPointer { a in
            envp.withUnsafeBufferPointer { e in
                hk_spawn(&pid, path, a.baseAddress, e.baseAddress, sources, targets, Int32(fdMap.count))
            }
        }
        guard rc == 0 else { throw SystemError(errno: rc, operation: "posix_spawn", path: path) }
        return pid
    }

    /// Duplicates `fd` to a close-on-exec descriptor at or above `minimum` and
    /// closes the original.
    public static func moveAbove(_ fd: Int32, minimum: Int32 = 20) throws(SystemError) -> Int32 {
        guard fd < minimum else {
            guard hk_set_cloexec(fd, 1) == 0 else { throw SystemError("fcntl(FD_CLOEXEC)", "") }
            return fd
        }
        let moved = hk_dup_cloexec_above(fd, minimum)
        guard moved >= 0 else { throw SystemError("fcntl(F_DUPFD_CLOEXEC)", "") }
        _ = Glibc.close(fd)
        return moved
    }

    /// How a child ended, decoded from a waitpid status.
    public enum Termination: Equatable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32, coreDumped: Bool)

        public init(status: Int32) {
            if hk_wifexited(status) != 0 {
                self = .exited(hk_wexitstatus(status))
            } else {
                self = .signaled(hk_wtermsig(status), coreDumped: hk_wcoredump(status) != 0)
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): return "exit status \(code)"
            case .signaled(let sig, let core): return "killed by signal \(sig)" + (core ? " (core dumped)" : "")
            }
        }

        public var isCleanExit: Bool { self == .exited(0) }
    }

    /// Reaps one exited child without blocking.
    public static func reap() -> (pid: pid_t, termination: Termination)? {
        var status: Int32 = 0
        let pid = waitpid(-1, &status, WNOHANG)
        guard pid > 0 else { return nil }
        return (pid, Termination(status: status))
    }
}

/// A pipe whose ends are both close-on-exec.
public struct Pipe {
    public let readEnd: Int32
    public let writeEnd: Int32

    public init() throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SystemError("pipe", "") }
        readEnd = try ProcessSpawner.moveAbove(fds[0])
        writeEnd = try ProcessSpawner.moveAbove(fds[1])
    }
}

/// Signals delivered through a signalfd, for a poll loop.
public struct SignalDescriptor {
    public let fd: Int32

    /// Blocks `signals` for this thread (and threads created later) and
    /// returns a descriptor that becomes readable when one arrives.
    public init(signals: [Int32]) throws(SystemError) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for s in signals { sigaddset(&mask, s) }
        guard pthread_sigmask(SIG_BLOCK, &mask, nil) == 0 else { throw SystemError("pthread_sigmask", "") }
        let fd = hk_signalfd(&mask)
        guard fd >= 0 else { throw SystemError("signalfd", "") }
        self.fd = try ProcessSpawner.moveAbove(fd)
    }

    /// The pending signals, in arrival order.
    public func drain() -> [Int32] {
        var out: [Int32] = []
        while true {
            let s = hk_signalfd_read(fd)
            if s <= 0 { break }
            out.append(s)
        }
        return out
    }
}

/// Marks an accepted descriptor close-on-exec.
public enum ProcessSpawnerCloexec {
    public static func set(_ fd: Int32) { _ = hk_set_cloexec(fd, 1) }
}
