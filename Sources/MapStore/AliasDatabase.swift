#if canImport(Glibc)
import Glibc
#endif
import HikyakuSystem

/// aliases.db in sendmail's layout: a Berkeley DB hash file whose keys and
/// values end in NUL, plus the `@` → `@` entry that marks a finished build.
/// Written to a temporary file and renamed, so readers see the old or the
/// new database, never half of one.
public enum AliasDatabase {
    public struct Summary: Sendable {
        public var count: Int
        public var longest: Int
        public var total: Int
    }

    public struct WriteError: Error, CustomStringConvertible {
        public let description: String
    }

    /// `entries`: alias name to its right-hand side as text.
    public static func write(_ entries: [(name: String, value: String)], to path: String) -> Result<Summary, WriteError> {
        let temporary = "\(path).tmp\(getpid())"
        do {
            let database = try BerkeleyMap.create(temporary, kind: .hash, allowDuplicates: false)
            var summary = Summary(count: 0, longest: 0, total: 0)
            for (name, value) in entries {
                _ = try database.put(key: Array(name.utf8) + [0], value: Array(value.utf8) + [0], overwrite: true)
                summary.count += 1
                summary.longest = max(summary.longest, value.utf8.count)
                summary.total += value.utf8.count
            }
            _ = try database.put(key: [UInt8(ascii: "@"), 0], value: [UInt8(ascii: "@"), 0], overwrite: true)
            try database.sync()
            database.close()
            let fd = try FileIO.open(temporary, O_RDONLY)
            defer { FileIO.close(fd) }
            try FileIO.fsync(fd, path: temporary)
            if let old = FileIO.stat(path) {
                _ = chown(temporary, old.st_uid, old.st_gid)
                _ = chmod(temporary, old.st_mode & 0o7777)
            }
            try FileIO.rename(temporary, path)
            let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
            try? FileIO.fsyncDirectory(directory.isEmpty ? "/" : directory)
            return .success(summary)
        } catch {
            _ = unlink(temporary)
            return .failure(WriteError(description: "\(error)"))
        }
    }
}
