#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: what was done, to what, and errno's text.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    public var errno: Int32
    public var operation: String
    public var path: String

    public init(errno: Int32, operation: String, path: String) {
        self.errno = errno
        self.operation = operation
        self.path = path
    }

    /// Captures the current errno.
    public init(_ operation: String, _ path: String) {
        self.init(errno: Glibc.errno, operation: operation, path: path)
    }

    public var description: String {
        let reason = String(cString: strerror(errno))
        return path.isEmpty ? "\(operation): \(reason)" : "\(operation) \(path): \(reason)"
    }

    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }
    public var isNotFound: Bool { errno == ENOENT }
}
