#if canImport(Glibc)
import Glibc
#endif
import HikyakuSystem
import MailCore
import SendmailRules

/// The members of an alias or `.forward` already delivered for a recipient
/// whose expansion has not finished: `defer/ID.leaves` in the spool, a line
/// "INDEX TAB MEMBER" each.
///
/// A recipient is marked done in the queue file only when every member of
/// its expansion is. When one member is deferred (a full disk refusing a
/// forwarded copy, a mailbox over quota) or local is killed half-way, the
/// recipient is tried again; the members written here are skipped then, so
/// the others do not get the message twice. One expansion's members are
/// written by one local process; parallel recipients of the same message
/// append whole lines (O_APPEND). qmgr removes the file with the message.
/// Written without fsync, like the queue file's marks: a power cut may
/// repeat a delivery, never lose one.
final class MemberJournal {
    let path: String
    let recipient: Int
    /// Open for appending from the first member recorded to the end of the
    /// expansion.
    var appendFD: Int32 = -1

    init(path: String, recipient: Int) {
        self.path = path
        self.recipient = recipient
    }

    deinit {
        if appendFD >= 0 { FileIO.close(appendFD) }
    }

    /// The members of `recipient` delivered before.
    func delivered() -> Set<String> {
        // None yet (ENOENT) is the usual case; one that is not local's own
        // plain file is not believed.
        guard let fd = try? open(O_RDONLY) else { return [] }
        defer { FileIO.close(fd) }
        guard let bytes = try? FileIO.readAll(fd, path: path, limit: 16 << 20) else { return [] }
        var members: Set<String> = []
        let prefix = "\(recipient)\t"
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix(prefix) {
            members.insert(String(line.dropFirst(prefix.count)))
        }
        return members
    }

    func record(_ member: String) throws(SystemError) {
        if appendFD < 0 { appendFD = try open(O_WRONLY | O_APPEND | O_CREAT) }
        try FileIO.writeAll(appendFD, Array("\(recipient)\t\(member)\n".utf8), path: path)
    }

    /// local opens it as root in a directory the mail owner writes: only a
    /// plain file of its own, never through a symlink or a hard link someone
    /// else planted there.
    func open(_ flags: Int32) throws(SystemError) -> Int32 {
        let fd = try FileIO.open(path, flags | O_NOFOLLOW | O_NONBLOCK, mode: 0o600)
        let st: stat
        do {
            st = try FileIO.fstat(fd, path: path)
        } catch {
            FileIO.close(fd)
            throw error
        }
        guard st.st_mode & S_IFMT == S_IFREG, st.st_nlink == 1, st.st_uid == geteuid() else {
            FileIO.close(fd)
            throw SystemError(errno: EPERM, operation: "open (not a plain file of local's own)", path: path)
        }
        return fd
    }

    /// How a member is named in the journal; nil for one that is never
    /// delivered (an error: entry).
    static func key(_ leaf: AliasExpansion.Leaf) -> String? {
        func clean(_ text: String) -> String { String(text.map { $0 == "\n" || $0 == "\t" ? " " : $0 }) }
        switch leaf {
        case .mailbox(let user, _): return "mailbox " + clean(user)
        case .remote(let address, _, _): return "remote " + clean(address.asciiLowercased())
        case .file(let path, _): return "file " + clean(path)
        case .pipe(let command, _): return "pipe " + clean(command)
        case .error: return nil
        }
    }
}
