#if canImport(Glibc)
import Glibc
#endif
import HikyakuSystem
import MapStore

let status = Makemap.run(arguments: Array(CommandLine.arguments.dropFirst()), input: {
    (try? FileIO.readAll(STDIN_FILENO)) ?? []
}, write: { text, toStderr in
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(toStderr ? STDERR_FILENO : STDOUT_FILENO, $0.baseAddress, $0.count) }
})
exit(status)
