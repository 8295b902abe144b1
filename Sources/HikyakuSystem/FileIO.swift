#if canImport(Glibc)
import Glibc
#endif
import CShims

/// Thin, throwing wrappers over the file system calls hikyaku needs; the
/// durability rules of docs/INTERNALS.md are built from these.
public enum FileIO {
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws(SystemError) -> Int32 {
        let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("open", path) }
        return fd
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    public static func fsync(_ fd: Int32, path: String = "") throws(SystemError) {
        guard Glibc.fsync(fd) == 0 else { throw SystemError("fsync", path) }
    }

    public enum LockMode { case shared, exclusive }

    /// flock(2): true once held; false, without waiting, when `wait` is
    /// false and someone else holds a conflicting lock.
    @discardableResult
    public static func flock(_ fd: Int32, _ mode: LockMode, wait: Bool = true, path: String = "") throws(SystemError) -> Bool {
        let operation: Int32 = (mode == .shared ? 1 : 2) | (wait ? 0 : 4)
        while hk_flock(fd, operation) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK && !wait { return false }
            throw SystemError("flock", path)
        }
        return true
    }

    /// fsync a directory so that renames and new entries in it are durable.
    public static func fsyncDirectory(_ path: String) throws(SystemError) {
        let fd = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    public static func rename(_ from: String, _ to: String) throws(SystemError) {
        guard Glibc.rename(from, to) == 0 else { throw SystemError("rename", "\(from) to \(to)") }
    }

    public static func unlink(_ path: String) throws(SystemError) {
        guard Glibc.unlink(path) == 0 else { throw SystemError("unlink", path) }
    }

    public static func link(_ from: String, _ to: String) throws(SystemError) {
        guard Glibc.link(from, to) == 0 else { throw SystemError("link", "\(from) to \(to)") }
    }

    public static func makeDirectory(_ path: String, mode: mode_t) throws(SystemError) {
        if Glibc.mkdir(path, mode) != 0 && errno != EEXIST { throw SystemError("mkdir", path) }
    }

    public static func stat(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return fstatat(AT_FDCWD, path, &st, 0) == 0 ? st : nil
    }

    public static func lstat(_ path: String) -> Glibc.stat? {
        var st = Glibc.stat()
        return fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st : nil
    }

    public static func fstat(_ fd: Int32, path: String = "") throws(SystemError) -> Glibc.stat {
        var st = Glibc.stat()
        guard Glibc.fstat(fd, &st) == 0 else { throw SystemError("fstat", path) }
        return st
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Writes every byte, retrying short writes and EINTR.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String = "") throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("write", path)
            }
            offset += n
        }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String = "") throws(SystemError) {
        guard !bytes.isEmpty else { return }
        let result: SystemError? = bytes.withUnsafeBytes { buffer -> SystemError? in
            do throws(SystemError) { try writeAll(fd, buffer, path: path); return nil } catch { return error }
        }
        if let result { throw result }
    }

    /// pwrite of a few bytes at an offset (status bytes in queue files).
    public static func pwriteAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String = "") throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("pwrite", path)
            }
            done += n
        }
    }

    /// Reads a whole file (queue files, maps, config).
    public static func readFile(_ path: String, limit: Int = 1 << 30) throws(SystemError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        return try readAll(fd, path: path, limit: limit)
    }

    public static func readAll(_ fd: Int32, path: String = "", limit: Int = 1 << 30) throws(SystemError) -> [UInt8] {
        let st = try fstat(fd, path: path)
        var out: [UInt8] = []
        out.reserveCapacity(Int(st.st_size) + 1)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path)
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            guard out.count <= limit else { throw SystemError(errno: EFBIG, operation: "read", path: path) }
        }
        return out
    }

    /// The last `limit` bytes of a file (the end of a log), from the start
    /// of the first whole line in them.
    public static func readTail(_ path: String, limit: Int) throws(SystemError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        let size = Int(try fstat(fd, path: path).st_size)
        let start = max(0, size - limit)
        var bytes = try pread(fd, count: size - start, at: start, path: path)
        if start > 0, let newline = bytes.firstIndex(of: 10) { bytes.removeSubrange(...newline) }
        return bytes
    }

    /// pread of a range (local reads message content from the queue file).
    public static func pread(_ fd: Int32, count: Int, at offset: Int, path: String = "") throws(SystemError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("pread", path)
            }
            if n == 0 { throw SystemError(errno: EIO, operation: "pread (file shorter than expected)", path: path) }
            done += n
        }
        return out
    }

    /// The names in a directory, without `.` and `..`.
    public static func listDirectory(_ path: String) throws(SystemError) -> [String] {
        guard let dir = opendir(path) else { throw SystemError("opendir", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { ptr in
                ptr.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public static func chown(_ path: String, uid: uid_t, gid: gid_t) throws(SystemError) {
        guard Glibc.chown(path, uid, gid) == 0 else { throw SystemError("chown", path) }
    }

    public static func chmod(_ path: String, _ mode: mode_t) throws(SystemError) {
        guard Glibc.chmod(path, mode) == 0 else { throw SystemError("chmod", path) }
    }

    /// Sets a file's modification time (deferred queue files carry their
    /// next-try time as mtime, as Postfix's do).
    public static func setModificationTime(_ path: String, seconds: Int) throws(SystemError) {
        var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
        guard utimensat(AT_FDCWD, path, &times, 0) == 0 else { throw SystemError("utimensat", path) }
    }

    public static func truncate(_ fd: Int32, to length: Int, path: String = "") throws(SystemError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw SystemError("ftruncate", path) }
    }
}
