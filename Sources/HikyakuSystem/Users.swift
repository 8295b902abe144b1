#if canImport(Glibc)
import Glibc
#endif
import Synchronization

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

/// Passwd entries and group lists remembered for a few seconds.
///
/// A delivery to a 50-member alias asks about each member several times
/// (does the user exist, where is the .forward, whom to become), and every
/// ask reads /etc/passwd, and for the groups /etc/group and systemd's userdb
/// (libnss_systemd walks /run/systemd/userdb each time): some eighty system
/// calls a member, most of local's CPU beside the mailbox writes. Users
/// found are kept for `timeToLive` seconds, so a user removed or a changed
/// group membership counts within that time; a new user counts at once.
/// Safe to share between threads (aliasd); lookups run outside the lock.
public final class UserCache: Sendable {
    struct Entry {
        var passwd: PasswdEntry
        var groups: [gid_t]?
        var expires: Double
    }

    let entries = Mutex<[String: Entry]>([:])
    public let timeToLive: Double
    let capacity: Int

    public init(timeToLive: Double = 10, capacity: Int = 8192) {
        self.timeToLive = timeToLive
        self.capacity = capacity
    }

    /// The passwd entry of `name`, or nil when there is no such user.
    public func user(named name: String) -> PasswdEntry? {
        let now = WallClock.monotonic()
        if let entry = entries.withLock({ $0[name] }), entry.expires > now { return entry.passwd }
        // "No such user" is asked again each time: a user added a moment
        // ago gets mail at once, and a typo is not a load.
        guard let passwd = PasswdEntry.lookup(name: name) else { return nil }
        store(name, Entry(passwd: passwd, groups: nil, expires: now + timeToLive))
        return passwd
    }

    /// What a process becomes to act for `user`: its ids and its groups
    /// (the group list is remembered with the entry of the same name).
    public func identity(of user: PasswdEntry) -> Privilege.Identity {
        let now = WallClock.monotonic()
        var expires = now + timeToLive
        if let entry = entries.withLock({ $0[user.name] }), entry.expires > now, entry.passwd == user {
            if let groups = entry.groups {
                return Privilege.Identity(name: user.name, uid: user.uid, gid: user.gid, groups: groups)
            }
            // Groups go with the passwd entry they were looked up beside:
            // neither is kept longer than the older of the two allows.
            expires = entry.expires
        }
        let groups = user.groupList()
        store(user.name, Entry(passwd: user, groups: groups, expires: expires))
        return Privilege.Identity(name: user.name, uid: user.uid, gid: user.gid, groups: groups)
    }

    func store(_ name: String, _ entry: Entry) {
        entries.withLock { entries in
            if entries.count >= capacity, entries[name] == nil {
                let now = WallClock.monotonic()
                entries = entries.filter { $0.value.expires > now }
                if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            }
            entries[name] = entry
        }
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
