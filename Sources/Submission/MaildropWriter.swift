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
/// there, 65 (EX_DATAERR) for input it refuses (not a maildrop file, larger
/// than `message_size_limit`, too many hops), 64 for a configuration it
/// refuses, 75 (EX_TEMPFAIL) when the file could not be written, with the
/// reason on stderr.
///
/// Security: installed setgid `setgid_group` (hikyaku-drop), like Postfix's
/// postdrop: it runs with the caller's uid, which becomes the file's owner
/// and so the submitter pickup believes. It ignores the environment and
/// reads a bounded amount. A `-c` configuration from a caller other than
/// root is opened once, checked with `fstat(2)` on that descriptor and read
/// from it: one that belongs to root and only root can write is used with
/// the helper's group; one that belongs to the caller and only the caller
/// can write is used only after the helper has given up its group for good
/// (Privilege.relinquishSetID), so it reaches no spool the caller could not
/// write to anyway (an ordinary user's `make run`); anything else is refused.
/// It writes nothing but the one file.
public enum MaildropWriter {
    static let exOK: Int32 = 0, exUsage: Int32 = 64, exDataErr: Int32 = 65, exTempFail: Int32 = 75

    /// The largest maildrop file for a message of at most `sizeLimit` bytes
    /// (0: no limit; the sendmail command reads at most 1 GiB): the magic,
    /// the envelope (one IPC frame, at most its maximum size), the content.
    public static func inputLimit(sizeLimit: Int) -> Int {
        (sizeLimit > 0 ? sizeLimit : 1 << 30) + MaildropFile.magic.count + IPCFrame.maximumFrameSize
    }

    /// How a `-c` configuration named by a caller other than root is used.
    enum ConfigurationTrust: Equatable {
        /// root's, writable by root only: used with the helper's group.
        case root
        /// the caller's, writable by the caller only: used without it.
        case caller
        case refused(String)

        static func judge(_ st: stat, caller: uid_t) -> ConfigurationTrust {
            guard (st.st_mode & S_IFMT) == S_IFREG else { return .refused("not a regular file") }
            guard st.st_mode & 0o022 == 0 else { return .refused("its group or others may write it") }
            if st.st_uid == 0 { return .root }
            if st.st_uid == caller { return .caller }
            return .refused("it belongs to neither root nor the caller")
        }
    }

    public static func run(arguments: [String], input: (Int) -> Result<[UInt8], SystemError>,
                           error: (String) -> Void) -> Int32 {
        var configPath: String? = nil
        if arguments.count == 2 && arguments[0] == "-c" { configPath = arguments[1] }
        let configuration: Configuration
        do {
            if let path = configPath, getuid() != 0 {
                // Open once; check and read that descriptor, so the file
                // checked is the file read.
                let fd: Int32
                do {
                    fd = try FileIO.open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY)
                } catch let failure {
                    error("hikyaku-drop: cannot open the configuration: \(failure)")
                    return exTempFail
                }
                defer { FileIO.close(fd) }
                switch ConfigurationTrust.judge(try FileIO.fstat(fd, path: path), caller: getuid()) {
                case .root:
                    break
                case .caller:
                    try Privilege.relinquishSetID()
                case .refused(let why):
                    error("hikyaku-drop: \(path): configuration refused: \(why) (a caller other than root may name only "
                          + "a configuration that belongs to root or to the caller and that nobody else may write)")
                    return exUsage
                }
                configuration = try ConfigurationLoader.load(descriptor: fd, path: path)
            } else {
                configuration = try ConfigurationLoader.load(path: configPath)
            }
        } catch let failure {
            error("hikyaku-drop: \(failure)")
            return exTempFail
        }
        let sizeLimit = configuration.size("message_size_limit")
        let bytes: [UInt8]
        switch input(inputLimit(sizeLimit: sizeLimit)) {
        case .success(let read):
            bytes = read
        case .failure(let failure) where failure.errno == EFBIG:
            error("hikyaku-drop: message file too big: the input is larger than "
                  + (sizeLimit > 0 ? "message_size_limit (\(sizeLimit) bytes)" : "1 GiB") + " and the envelope")
            return exDataErr
        case .failure(let failure):
            error("hikyaku-drop: cannot read the message: \(failure)")
            return exDataErr
        }
        return write(bytes, configuration: configuration, error: error)
    }

    /// Checks a maildrop file, writes it into maildrop/ and wakes pickup;
    /// the exit status. The helper's work once it has its configuration and
    /// input, and what sendmail run by root does itself.
    public static func write(_ bytes: [UInt8], configuration: Configuration, error: (String) -> Void) -> Int32 {
        umask(0o022)
        let sizeLimit = configuration.size("message_size_limit")
        let file: MaildropFile
        do {
            file = try MaildropFile(decoding: bytes)
        } catch let failure {
            error("hikyaku-drop: not a maildrop file: \(failure)")
            return exDataErr
        }
        if let refusal = SubmissionLimits(sizeLimit: sizeLimit).check(file.content) {
            error("hikyaku-drop: \(refusal)")
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
