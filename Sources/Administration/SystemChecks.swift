#if canImport(Glibc)
import Glibc
#endif
import AliasService
import HikyakuConfig
import HikyakuSystem
import MapStore
import SendmailRules

/// The checks of `hikyaku check` that look beyond the configuration file:
/// the maps as aliasd will read them, the mail spool, whether
/// /usr/sbin/sendmail is ours, and whether smtpd's addresses can be served.
/// Each returns problems as sentences that end with what to do.
enum SystemChecks {
    /// The aliases, access, virtusertable, mailertable and domaintable maps
    /// and TCP wrappers' files, read the way aliasd reads them; every
    /// problem names its file and line.
    static func maps(_ config: Configuration) -> [String] {
        var problems: [String] = []
        let aliases = config.string("alias_file")
        if let bytes = try? FileIO.readFile(aliases, limit: 64 << 20) {
            for problem in AliasFile(text: String(decoding: bytes, as: UTF8.self)).problems {
                problems.append("\(aliases): \(problem)")
            }
            if let text = FileIO.stat(aliases), let db = FileIO.stat(aliases + ".db"),
               (db.st_mtim.tv_sec, db.st_mtim.tv_nsec) < (text.st_mtim.tv_sec, text.st_mtim.tv_nsec) {
                problems.append("\(aliases).db is older than \(aliases): run newaliases")
            }
        }
        _ = MapLoader.routingTables(config) { problems.append($0) }
        let accessPath = config.string("access_map")
        if let access = MapLoader.load(name: "access", sourcePath: accessPath, warn: { _ in }) {
            for (key, entry) in access.entries.sorted(by: { ($0.value.line, $0.key) < ($1.value.line, $1.key) })
                where !isAccessAction(entry.value) {
                let place = entry.line > 0 ? "\(accessPath): line \(entry.line)" : access.path
                problems.append("\(place): key \(key): '\(entry.value)' is not an access action (OK, RELAY, REJECT, "
                                + "DISCARD, SKIP, ERROR:...); like sendmail, hikyaku refuses with it as the error text")
            }
        }
        let allow = config.string("smtpd_hosts_allow_file"), deny = config.string("smtpd_hosts_deny_file")
        func read(_ path: String) -> String? {
            guard !path.isEmpty, let bytes = try? FileIO.readFile(path, limit: 4 << 20) else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        }
        problems += HostsAccess(allowPath: allow, allowText: read(allow), denyPath: deny, denyText: read(deny),
                                readFile: read).problems
        return problems
    }

    static func isAccessAction(_ value: String) -> Bool {
        let upper = value.uppercased()
        if ["OK", "RELAY", "REJECT", "DISCARD", "SKIP"].contains(upper) { return true }
        if upper.hasPrefix("ERROR:") || upper.hasPrefix("QUARANTINE:") { return true }
        // sendmail's numeric form: a reply code and text.
        if let code = Int(upper.prefix(3)), (400...599).contains(code) { return true }
        return false
    }

    /// mail_spool_directory (/var/mail): a directory, owned by root, that
    /// nobody can use to remove another user's mailbox.
    static func mailSpool(_ config: Configuration) -> [String] {
        let path = config.string("mail_spool_directory")
        guard let st = FileIO.stat(path) else { return [] }  // reported with alias_file's check
        guard st.st_mode & S_IFMT == S_IFDIR else {
            return ["mail_spool_directory = \(path) is not a directory"]
        }
        var problems: [String] = []
        if st.st_mode & 0o002 != 0 && st.st_mode & 0o1000 == 0 {
            problems.append("\(path) is writable by everyone without the sticky bit: any user can remove or replace "
                            + "another's mailbox; chmod 2775 \(path) and chgrp mail \(path) (Debian's default)")
        }
        if Privilege.isRoot && st.st_uid != 0 {
            problems.append("\(path) should be owned by root; it is " + Check.describe(st) + ": chown root \(path)")
        }
        return problems
    }

    /// Whether `path` (the sendmail command every program calls) is this
    /// installation's sendmail: the same file as the `sendmail` beside the
    /// running `hikyaku`.
    static func sendmailCommand(_ path: String, ours: String) -> [String] {
        guard let target = FileIO.stat(path) else {
            return ["\(path) is missing: cron, mailx and every program that sends mail through it fail; "
                    + "install hikyaku's package, or link \(path) to \(ours)"]
        }
        guard let mine = FileIO.stat(ours) else { return [] }
        if target.st_dev == mine.st_dev && target.st_ino == mine.st_ino { return [] }
        if target.st_size == mine.st_size, let a = try? FileIO.readFile(path, limit: 256 << 20),
           let b = try? FileIO.readFile(ours, limit: 256 << 20), a == b {
            return []
        }
        return ["\(path) is not hikyaku's sendmail (\(ours)): programs that send mail with it bypass hikyaku; "
                + "remove the other mail system (apt-get remove postfix exim4-daemon-light sendmail-bin) or reinstall hikyaku"]
    }

    /// The `sendmail` installed beside this `hikyaku`.
    static var companionSendmail: String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return nil }
        return String(exe[..<slash]) + "/sendmail"
    }

    /// smtpd's addresses: with the master stopped, that each can be bound
    /// (nothing else holds the port); with it running, that each accepts
    /// connections.
    static func listeners(_ config: Configuration, masterRunning: Bool) -> [String] {
        var problems: [String] = []
        for key in ["smtpd_listen", "submission_listen", "smtps_listen"] {
            for address in config.list(key) {
                if masterRunning {
                    guard let (host, port) = Sockets.parseHostPort(address) else { continue }
                    let target = host.isEmpty || host == "0.0.0.0" ? "127.0.0.1" : host == "::" ? "::1" : host
                    if !canConnect(host: target, port: port) {
                        problems.append("\(key): nothing accepts connections on \(address) although the master runs; "
                                        + "see the log for smtpd's errors")
                    }
                    continue
                }
                do {
                    let fd = try Sockets.listenTCP(address, backlog: 1)
                    close(fd)
                } catch {
                    problems.append("\(key): cannot listen on \(address): \(String(cString: strerror(error.errno))); "
                                    + "if another program holds the port, `ss -ltnp` names it")
                }
            }
        }
        return problems
    }

    static func canConnect(host: String, port: Int) -> Bool {
        var hints = addrinfo()
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { return false }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0
    }
}
