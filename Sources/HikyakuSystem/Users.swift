#if canImport(Glibc)
import Glibc
#endif

/// A passwd entry, resolved with the reentrant libc calls.
public struct PasswdEntry: Sendable, Equatable {
    public var name: String
    public var uid: uid_t
    public var gid: gid_t
    public var home: String
    public var shell: String

    public init(name: String, uid: uid_t, gid: gid_t, home: String, shell: String) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.shell = shell
    }

    public static func lookup(name: String) -> PasswdEntry? {
        guard !name.isEmpty, !name.contains("\0") else { return nil }
        return withPasswdBuffer { pwd, buffer, result in
            getpwnam_r(name, &pwd, buffer.baseAddress!, buffer.count, &result)
        }
    }

    public static func lookup(uid: uid_t) -> PasswdEntry? {
        withPasswdBuffer { pwd, buffer, result in
            getpwuid_r(uid, &pwd, buffer.baseAddress!, buffer.count, &result)
        }
    }

    static func withPasswdBuffer(_ call: (inout passwd, UnsafeMutableBufferPointer<CChar>, inout UnsafeMutablePointer<passwd>?) -> Int32) -> PasswdEntry? {
        var size = 4096
        while size <= 1 << 20 {
            var pwd = passwd()
            var result: UnsafeMutablePointer<passwd>? = nil
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let rc = call(&pwd, buffer, &result)
            if rc == ERANGE { size *= 4; continue }
            guard rc == 0, result != nil else { return nil }
            return PasswdEntry(name: String(cString: pwd.pw_name), uid: pwd.pw_uid, gid: pwd.pw_gid,
                               home: String(cString: pwd.pw_dir), shell: String(cString: pwd.pw_shell))
        }
        return nil
    }

    /// The user's groups: the primary group plus every group listing the user.
    public func groupList() -> [gid_t] {
        var count: Int32 = 32
        while count <= 65536 {
            var groups = [gid_t](repeating: 0, count: Int(count))
            var n = count
            if getgrouplist(name, gid, &groups, &n) >= 0 {
                return Array(groups.prefix(Int(n)))
            }
            count = max(n, count * 2)
        }
        return [gid]
    }

    public var identity: Privilege.Identity {
        Privilege.Identity(name: name, uid: uid, gid: gid, groups: groupList())
    }
}

public enum GroupEntry {
    /// The gid of a group name.
    public static func gid(named name: String) -> gid_t? {
        var size = 4096
        while size <= 1 << 20 {
            var grp = group()
            var result: UnsafeMutablePointer<group>? = nil
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let rc = getgrnam_r(name, &grp, buffer.baseAddress!, buffer.count, &result)
            if rc == ERANGE { size *= 4; continue }
            guard rc == 0, result != nil else { return nil }
            return grp.gr_gid
        }
        return nil
    }

    /// The name of a gid, for messages.
    public static func name(of gid: gid_t) -> String? {
        var size = 4096
        while size <= 1 << 20 {
            var grp = group()
            var result: UnsafeMutablePointer<group>? = nil
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: size)
            defer { buffer.deallocate() }
            let rc = getgrgid_r(gid, &grp, buffer.baseAddress!, buffer.count, &result)
            if rc == ERANGE { size *= 4; continue }
            guard rc == 0, result != nil, let name = grp.gr_name else { return nil }
            return String(cString: name)
        }
        return nil
    }
}
