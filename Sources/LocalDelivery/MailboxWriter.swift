#if canImport(Glibc)
import Glibc
#endif
import CShims
import HikyakuSystem
import MailCore

/// Writes one message into a mailbox with the caller's (already switched)
/// effective identity. Every failure before the fsync leaves the mailbox as
/// it was; the result is a delivery outcome, never a thrown error.
public final class MailboxWriter {
    public var lockTimeout: Double
    public var hostname: String

    public init(lockTimeout: Double, hostname: String) {
        self.lockTimeout = lockTimeout
        self.hostname = hostname
    }

    // MARK: mbox

    /// Appends to an mbox file: dotlock (`PATH.lock`, as liblockfile and
    /// Postfix make it) and an fcntl lock, the entry, fsync; on any write
    /// error the file is truncated back to its old size.
    public func appendMbox(path: String, entry: [UInt8], expectedOwner: uid_t) -> DeliveryOutcome {
        let lockPath = path + ".lock"
        switch acquireDotLock(lockPath) {
        case .acquired: break
        case .timedOut:
            return .deferred(EnhancedStatusCode(4, 2, 0), "cannot get the mailbox lock \(lockPath): held too long by another program")
        case .failed(let error):
            return .deferred(EnhancedStatusCode(4, 2, 0), "cannot create the mailbox lock: \(error)")
        }
        defer { _ = unlink(lockPath) }

        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o600)
        guard fd >= 0 else {
            return .deferred(EnhancedStatusCode(4, 2, 0), "cannot open mailbox \(path): \(SystemError("open", path).description)")
        }
        defer { Glibc.close(fd) }
        _ = hk_set_nonblocking(fd, 0)
        // The mailbox must be a plain file of the recipient's, with one link:
        // never a device, a FIFO, or someone else's file linked into place.
        guard let st = try? FileIO.fstat(fd, path: path) else {
            return .deferred(EnhancedStatusCode(4, 2, 0), "cannot examine mailbox \(path)")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink == 1 else {
            return .deferred(EnhancedStatusCode(4, 2, 0), "mailbox \(path) is not a regular file with one link")
        }
        guard st.st_uid == expectedOwner else {
            return .deferred(EnhancedStatusCode(4, 2, 0), "mailbox \(path) is owned by uid \(st.st_uid), not the recipient")
        }
        let deadline = WallClock.monotonic() + lockTimeout
        while hk_lock_file(fd, hk_lock_type_write(), 0) != 0 {
            guard errno == EAGAIN || errno == EACCES || errno == EINTR else {
                return .deferred(EnhancedStatusCode(4, 2, 0), "cannot lock mailbox \(path): \(SystemError("fcntl", path).description)")
            }
            guard WallClock.monotonic() < deadline else {
                return .deferred(EnhancedStatusCode(4, 2, 0), "cannot lock mailbox \(path): locked too long by another program")
            }
            usleep(100_000)
        }
        defer { _ = hk_lock_file(fd, hk_lock_type_unlock(), 0) }

        // Size after locking: another writer may have appended meanwhile.
        guard let locked = try? FileIO.fstat(fd, path: path) else {
            return .deferred(EnhancedStatusCode(4, 2, 0), "cannot examine mailbox \(path)")
        }
        let oldSize = Int(locked.st_size)
        do {
            try FileIO.writeAll(fd, entry, path: path)
            try FileIO.fsync(fd, path: path)
        } catch {
            _ = ftruncate(fd, off_t(oldSize))
            _ = Glibc.fsync(fd)
            if error.isNoSpace {
                return .deferred(EnhancedStatusCode(4, 2, 2), "cannot append to mailbox \(path): \(error)")
            }
            return .deferred(EnhancedStatusCode(4, 2, 0), "cannot append to mailbox \(path): \(error)")
        }
        return .delivered(EnhancedStatusCode(2, 0, 0), "delivered to mailbox")
    }

    enum DotLockResult {
        case acquired
        case timedOut
        case failed(SystemError)
    }

    /// `PATH.lock` created exclusively, holding our pid, as liblockfile does.
    /// A lock is stale, and removed, when the process named in it no longer
    /// exists (a delivery agent killed mid-delivery) or when it is older than
    /// five minutes.
    func acquireDotLock(_ lockPath: String) -> DotLockResult {
        let deadline = WallClock.monotonic() + lockTimeout
        while true {
            let fd = Glibc.open(lockPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if fd >= 0 {
                let text = Array("\(getpid())\n".utf8)
                _ = text.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
                Glibc.close(fd)
                return .acquired
            }
            guard errno == EEXIST else { return .failed(SystemError("create", lockPath)) }
            if let st = FileIO.lstat(lockPath), WallClock.seconds() - st.st_mtim.tv_sec > 300 {
                _ = unlink(lockPath)
                continue
            }
            if let holder = Self.lockHolder(lockPath), holder != getpid(), kill(holder, 0) != 0, errno == ESRCH {
                _ = unlink(lockPath)
                continue
            }
            guard WallClock.monotonic() < deadline else { return .timedOut }
            usleep(100_000)
        }
    }

    /// The pid written in a lock file, if it holds one.
    static func lockHolder(_ path: String) -> pid_t? {
        guard let bytes = try? FileIO.readFile(path, limit: 64) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimming(" \n\t\0")
        guard let pid = pid_t(text), pid > 1 else { return nil }
        return pid
    }

    // MARK: Maildir

    /// Makes Maildir names unique within this process.
    var sequence = 0

    /// Delivers into a Maildir: `tmp/UNIQUE`, fsync, rename into `new/`,
    /// fsync `new/` so the rename survives a power cut.
    public func deliverMaildir(directory: String, file: [UInt8]) -> DeliveryOutcome {
        let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let (seconds, micros) = WallClock.now()
        sequence += 1
        let host = hostname.split(separator: ".").first.map(String.init) ?? hostname
        let safeHost = String(host.map { $0 == "/" ? "\\057" : ($0 == ":" ? "\\072" : String($0)) }.joined())
        let unique = "\(seconds).M\(micros)P\(getpid())Q\(sequence).\(safeHost),S=\(file.count)"
        let tmpPath = "\(base)/tmp/\(unique)"
        let newPath = "\(base)/new/\(unique)"
        let flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        var fd = Glibc.open(tmpPath, flags, 0o600)
        if fd < 0 && errno == ENOENT {
            // The first delivery: make the Maildir (looking for it each time
            // would cost four system calls a delivery).
            if let failed = makeMaildir(base) { return failed }
            fd = Glibc.open(tmpPath, flags, 0o600)
        }
        guard fd >= 0 else {
            return .deferred(EnhancedStatusCode(4, 2, 0), "cannot create maildir file \(tmpPath): \(SystemError("open", tmpPath).description)")
        }
        do {
            defer { Glibc.close(fd) }
            try FileIO.writeAll(fd, file, path: tmpPath)
            try FileIO.fsync(fd, path: tmpPath)
            do {
                try FileIO.rename(tmpPath, newPath)
            } catch where error.errno == ENOENT {
                // tmp/ without new/ (or cur/): complete the Maildir.
                if let failed = makeMaildir(base) {
                    _ = unlink(tmpPath)
                    return failed
                }
                try FileIO.rename(tmpPath, newPath)
            }
            try FileIO.fsyncDirectory(base + "/new")
        } catch {
            _ = unlink(tmpPath)
            return .deferred(EnhancedStatusCode(4, 2, error.isNoSpace ? 2 : 0),
                             "cannot deliver to maildir \(base): \(error)")
        }
        return .delivered(EnhancedStatusCode(2, 0, 0), "delivered to maildir")
    }

    /// Creates whatever part of a Maildir is missing; the outcome if it
    /// cannot.
    func makeMaildir(_ base: String) -> DeliveryOutcome? {
        for sub in ["", "/tmp", "/new", "/cur"] {
            if Glibc.mkdir(base + sub, 0o700) != 0 && errno != EEXIST {
                return .deferred(EnhancedStatusCode(4, 2, 0), "cannot create maildir \(base + sub): \(SystemError("mkdir", base + sub).description)")
            }
        }
        return nil
    }
}
