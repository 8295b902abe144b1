#if canImport(Glibc)
import Glibc
#endif
import HikyakuSystem
import Submission

// A setgid program: the environment is the caller's and is not used.
let status = MaildropWriter.run(
    arguments: Array(CommandLine.arguments.dropFirst()),
    input: { limit in Result { () throws(SystemError) -> [UInt8] in try FileIO.readAll(STDIN_FILENO, limit: limit) } },
    error: { text in
        let bytes = Array((text + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    })
exit(status)
