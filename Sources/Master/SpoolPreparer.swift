#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig
import HikyakuSystem

/// Creates the spool and gives each directory its owner and mode, as the
/// Debian package's postinst and `hikyaku check` will; copies the few /etc
/// files a chrooted program needs for name service.
enum SpoolPreparer {
    static func prepare(spool: SpoolLayout, owner: PasswdEntry?, dropGroup: gid_t?) throws {
        try FileIO.makeDirectory(spool.root, mode: 0o755)
        let uid = owner?.uid ?? geteuid()
        let gid = owner?.gid ?? getegid()
        for queue in SpoolLayout.Queue.allCases {
            let path = spool.directory(queue)
            try FileIO.makeDirectory(path, mode: 0o700)
            if owner != nil { try FileIO.chown(path, uid: uid, gid: gid) }
            try FileIO.chmod(path, 0o700)
        }
        try FileIO.makeDirectory(spool.deferDirectory, mode: 0o700)
        if owner != nil { try FileIO.chown(spool.deferDirectory, uid: uid, gid: gid) }
        try FileIO.makeDirectory(spool.privateDirectory, mode: 0o700)
        if owner != nil { try FileIO.chown(spool.privateDirectory, uid: uid, gid: gid) }
        try FileIO.chmod(spool.privateDirectory, 0o700)
        // public/: anyone may reach showq (mailq); the pickup socket inside is
        // for the setgid helper's group. maildrop/: the helper's group may
        // write but not list, and the sticky bit keeps files from being
        // removed by anyone but their writer and pickup (Postfix's layout).
        try FileIO.makeDirectory(spool.publicDirectory, mode: 0o711)
        if owner != nil { try FileIO.chown(spool.publicDirectory, uid: uid, gid: dropGroup ?? gid) }
        try FileIO.chmod(spool.publicDirectory, 0o711)
        if let dropGroup, owner != nil {
            try FileIO.chown(spool.directory(.maildrop), uid: uid, gid: dropGroup)
            try FileIO.chmod(spool.directory(.maildrop), 0o1730)
        }
        try FileIO.makeDirectory(spool.pidDirectory, mode: 0o755)
        if owner != nil { try copyNameServiceFiles(into: spool.root + "/etc") }
    }

    /// Postfix's Debian setup copies these into its chroot; so do we, so that
    /// smtpd's reverse lookups work inside the spool.
    static func copyNameServiceFiles(into directory: String) throws {
        try FileIO.makeDirectory(directory, mode: 0o755)
        for name in ["resolv.conf", "hosts", "nsswitch.conf", "services", "host.conf", "localtime"] {
            let source = "/etc/" + name
            guard let bytes = try? FileIO.readFile(source, limit: 4 << 20) else { continue }
            let target = directory + "/" + name
            let temporary = target + ".new"
            let fd = try FileIO.open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
            defer { FileIO.close(fd) }
            try FileIO.writeAll(fd, bytes, path: temporary)
            try FileIO.rename(temporary, target)
        }
    }

    /// Before any cleanup runs, nothing in tmp/ has a writer.
    static func removeTemporaryFiles(spool: SpoolLayout) {
        let directory = spool.directory(.tmp)
        for name in (try? FileIO.listDirectory(directory)) ?? [] {
            _ = unlink(directory + "/" + name)
        }
    }
}
