#if canImport(Glibc)
import Glibc
#endif
import CBerkeleyDB

/// A Berkeley DB hash or btree file, the format of sendmail's compiled
/// maps (`makemap hash`, `makemap btree`, `newaliases`). Files written here
/// are read by sendmail's makemap and db5.3_dump, and the other way round.
/// One owner at a time: a handle is not shared between threads.
public final class BerkeleyMap {
    public enum Kind: String, Sendable, CaseIterable {
        case hash, btree

        var dbType: DBTYPE { self == .hash ? DB_HASH : DB_BTREE }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let operation: String
        public let path: String
        public let reason: String
        public var description: String { "\(operation) \(path): \(reason)" }
    }

    let handle: OpaquePointer
    var db: UnsafeMutablePointer<DB> { UnsafeMutablePointer<DB>(handle) }
    public let path: String
    var closed = false

    init(handle: UnsafeMutablePointer<DB>, path: String) {
        self.handle = OpaquePointer(handle)
        self.path = path
    }

    deinit { close() }

    static func failure(_ operation: String, _ path: String, _ rc: Int32) -> Failure {
        let reason = rc > 0 ? String(cString: strerror(rc)) : String(cString: hk_db_strerror(rc))
        return Failure(operation: operation, path: path, reason: reason)
    }

    /// Opens an existing map read-only; the kind is read from the file.
    public static func openForReading(_ path: String) throws -> BerkeleyMap {
        var pointer: UnsafeMutablePointer<DB>? = nil
        var rc = hk_db_create(&pointer)
        guard rc == 0, let db = pointer else { throw failure("db_create", path, rc) }
        rc = hk_db_open(db, path, DB_UNKNOWN, UInt32(DB_RDONLY), 0)
        guard rc == 0 else {
            _ = hk_db_close(db)
            throw failure("open", path, rc)
        }
        return BerkeleyMap(handle: db, path: path)
    }

    /// Creates a new, empty map (an existing file at `path` is replaced).
    public static func create(_ path: String, kind: Kind, allowDuplicates: Bool, mode: Int32 = 0o644) throws -> BerkeleyMap {
        var pointer: UnsafeMutablePointer<DB>? = nil
        var rc = hk_db_create(&pointer)
        guard rc == 0, let db = pointer else { throw failure("db_create", path, rc) }
        if allowDuplicates {
            rc = hk_db_set_dup(db)
            guard rc == 0 else { _ = hk_db_close(db); throw failure("set_flags", path, rc) }
        }
        rc = hk_db_open(db, path, kind.dbType, UInt32(DB_CREATE) | UInt32(DB_TRUNCATE), mode)
        guard rc == 0 else {
            _ = hk_db_close(db)
            throw failure("open", path, rc)
        }
        return BerkeleyMap(handle: db, path: path)
    }

    public var kind: Kind? {
        var type = DB_UNKNOWN
        guard hk_db_get_type(db, &type) == 0 else { return nil }
        return type == DB_HASH ? .hash : (type == DB_BTREE ? .btree : nil)
    }

    public enum PutResult { case stored, duplicate }

    public func put(key: [UInt8], value: [UInt8], overwrite: Bool) throws -> PutResult {
        let rc = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                hk_db_put(db, k.baseAddress, UInt32(k.count), v.baseAddress, UInt32(v.count), overwrite ? 0 : 1)
            }
        }
        if rc == DB_KEYEXIST { return .duplicate }
        guard rc == 0 else { throw Self.failure("put", path, rc) }
        return .stored
    }

    public func get(_ key: [UInt8]) -> [UInt8]? {
        var value: UnsafeMutableRawPointer? = nil
        var length: UInt32 = 0
        let rc = key.withUnsafeBytes { k in hk_db_get(db, k.baseAddress, UInt32(k.count), &value, &length) }
        guard rc == 0, let value else { return nil }
        return Array(UnsafeRawBufferPointer(start: value, count: Int(length)))
    }

    /// Every entry, in the file's order.
    public func entries() throws -> [(key: [UInt8], value: [UInt8])] {
        var cursor: UnsafeMutablePointer<DBC>? = nil
        let rc = hk_db_cursor(db, &cursor)
        guard rc == 0, let cursor else { throw Self.failure("cursor", path, rc) }
        defer { _ = hk_dbc_close(cursor) }
        var out: [(key: [UInt8], value: [UInt8])] = []
        while true {
            var k: UnsafeMutableRawPointer? = nil, v: UnsafeMutableRawPointer? = nil
            var kl: UInt32 = 0, vl: UInt32 = 0
            let rc = hk_dbc_next(cursor, &k, &kl, &v, &vl)
            if rc == DB_NOTFOUND { break }
            guard rc == 0 else { throw Self.failure("cursor", path, rc) }
            out.append((Array(UnsafeRawBufferPointer(start: k, count: Int(kl))), Array(UnsafeRawBufferPointer(start: v, count: Int(vl)))))
        }
        return out
    }

    /// Flushes to the file (then the caller fsyncs and renames it).
    public func sync() throws {
        let rc = hk_db_sync(db)
        guard rc == 0 else { throw Self.failure("sync", path, rc) }
    }

    public func close() {
        guard !closed else { return }
        closed = true
        _ = hk_db_close(db)
    }
}
