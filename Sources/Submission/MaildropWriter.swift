#if canImport(Glibc)
import Glibc
#endif
import CShims
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem

/// hikyaku-drop - the maildrop helper
///
/// Description: the only way into maildrop/ for local users. The sendmail
/// command hands it a maildrop file on standard input; it checks the file,
/// writes it into maildrop/ (under a dot-name, fsynced, then renamed), and
/// wakes pickup through `public/pickup`. Exit 0 when the file is safely
/// there, 75 (EX_TEMPFAIL) when it is not, with the reason on stderr.
///
/// Security: installed setgid `setgid_group` (hikyaku-drop), like Postfix's
/// postdrop: it runs with the caller's uid, which becomes the file's owner
/// and so the submitter pickup believes. It ignores the environment, takes
/// `-c` only from root or for a root-owned configuration no one else can
/// write, reads a bounded amount, and writes nothing but the one file.
public enum MaildropWriter {
    static let exOK: Int32 = 0, exUsage: Int32 = 64, exDataErr: Int32 = 65, exTempFail: Int32 = 75

    public static func run(arguments: [String], input: () -> [UInt8]?, error: (String) -> Void) -> Int32 {
        umask(0o022)
        var configPath: String? = nil
        if arguments.count == 2 && arguments[0] == "-c" { configPath = arguments[1] }
        if let path = configPath, getuid() != 0 {
            guard let st = FileIO.stat(path), st.st_uid == 0, st.st_mode & 0o022 == 0 else {
                error("hikyaku-drop: \(path): not a root-owned configuration; using the default")
                configPath = nil
                return exUsage
            }
        }
        let configuration: Configuration
        do {
            configuration = try ConfigurationLoader.load(path: configPath)
        } catch let failure {
            error("hikyaku-drop: \(failure)")
            return exTempFail
        }
        guard let bytes = input() else {
            error("hikyaku-drop: cannot read the message (larger than message_size_limit?)")
            return exDataErr
        }
        do {
            _ = try MaildropFile(decoding: bytes)
        } catch let failure {
            error("hikyaku-drop: not a maildrop file: \(failure)")
            return exDataErr
        }
        let spool = SpoolLayout(root: configuration.string("queue_directory"))
        let directory = spool.directory(.maildrop)
        let (seconds, micros) = WallClock.now()
        var random = SystemRandomNumberGenerator()
        let name = "\(seconds).\(micros).\(getpid()).\(String(random.next() % 1_000_000_000, radix: 36))"
        let temporary = directory + "/." + name
        do {
            let fd = try FileIO.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: 0o644)
            defer { FileIO.close(fd) }
            try FileIO.writeAll(fd, bytes, path: temporary)
            try FileIO.fsync(fd, path: temporary)
            try FileIO.rename(temporary, directory + "/" + name)
            // The helper may not read maildrop/ (mode 1730), so it cannot
            // fsync the directory itself; syncfs on the file's filesystem
            // makes the rename durable just the same.
            guard hk_syncfs(fd) == 0 else { throw SystemError("syncfs", directory) }
        } catch let failure {
            if FileIO.lstat(directory + "/" + name) == nil { _ = unlink(temporary) }
            else {
                // The file is in place; only its durability is in doubt. pickup
                // will take it, so saying "failed" would invite a duplicate.
                error("hikyaku-drop: warning: \(failure)")
                return exOK
            }
            error("hikyaku-drop: cannot write to \(directory): \(failure)")
            return exTempFail
        }
        // Wake pickup; if it is not there, it finds the file on its next scan.
        if let fd = try? Sockets.connectUnix(spool.socket(.pickup)) {
            try? FileIO.writeAll(fd, IPCFrame(.pickupWake).encoded())
            FileIO.close(fd)
        }
        return exOK
    }
}
