#if canImport(Glibc)
import Glibc
#endif
import HikyakuSystem
import Submission

let name = CommandLine.arguments.first.map { $0.split(separator: "/").last.map(String.init) ?? $0 } ?? "sendmail"
var io = CommandIO(
    readLine: { Swift.readLine(strippingNewline: true) },
    output: { text in
        let line = text == "> " ? text : text + "\n"
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
    },
    error: { text in
        let bytes = Array((text + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    },
    isInteractive: isatty(STDIN_FILENO) != 0)
io.readAll = { try? FileIO.readAll(STDIN_FILENO, limit: 1 << 30) }
io.write = { bytes in
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { break }
        offset += n
    }
}
exit(SendmailCommand.main(arguments: Array(CommandLine.arguments.dropFirst()), programName: name, io: io))

