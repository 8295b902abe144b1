#if canImport(Glibc)
import Glibc
#endif
import CShims

/// Socket creation for the master (listeners) and blocking Unix-socket
/// clients for the single-threaded programs.
public enum Sockets {
    /// A listening TCP socket on `host:port` or `[v6]:port`.
    public static func listenTCP(_ spec: String, backlog: Int32 = 1024) throws(SystemError) -> Int32 {
        guard let (host, port) = parseHostPort(spec) else {
            throw SystemError(errno: EINVAL, operation: "parse listen address", path: spec)
        }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &result)
        guard rc == 0, let info = result else {
            throw SystemError(errno: EINVAL, operation: "listen address (numeric host expected)", path: spec)
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", spec) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if info.pointee.ai_family == AF_INET6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let error = SystemError("bind", spec)
            Glibc.close(fd)
            throw error
        }
        guard listen(fd, backlog) == 0 else {
            let error = SystemError("listen", spec)
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// `127.0.0.1:25`, `[::1]:25`, `:25` (all IPv4 addresses).
    public static func parseHostPort(_ spec: String) -> (String, Int)? {
        var host: Substring
        var portText: Substring
        if spec.hasPrefix("[") {
            guard let close = spec.firstIndex(of: "]") else { return nil }
            host = spec[spec.index(after: spec.startIndex)..<close]
            let rest = spec[spec.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = spec.lastIndex(of: ":") else { return nil }
            host = spec[..<colon]
            portText = spec[spec.index(after: colon)...]
            if host.isEmpty { host = "0.0.0.0" }
        }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// The port a bound socket ended up with (for port 0).
    public static func boundPort(_ fd: Int32) -> Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { return nil }
        if storage.ss_family == sa_family_t(AF_INET) {
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) } }
        }
        return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) } }
    }

    /// A bound TCP socket's address in smtpd_listen's form: `127.0.0.1:25`,
    /// `[::1]:25`; nil for anything else.
    public static func boundAddress(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0, let port = boundPort(fd) else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            var address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr } }
            guard inet_ntop(AF_INET, &address, &text, socklen_t(text.count)) != nil else { return nil }
            return "\(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)):\(port)"
        case AF_INET6:
            var address = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr } }
            guard inet_ntop(AF_INET6, &address, &text, socklen_t(text.count)) != nil else { return nil }
            return "[\(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))]:\(port)"
        default:
            return nil
        }
    }

    static func unixAddress(_ path: String) throws(SystemError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemError(errno: ENAMETOOLONG, operation: "unix socket path", path: path)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return address
    }

    /// A listening Unix stream socket at `path` (an old socket file is replaced).
    public static func listenUnix(_ path: String, mode: mode_t, backlog: Int32 = 256) throws(SystemError) -> Int32 {
        var address = try unixAddress(path)
        _ = Glibc.unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", path) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let error = SystemError("bind", path)
            Glibc.close(fd)
            throw error
        }
        Glibc.chmod(path, mode)
        guard listen(fd, backlog) == 0 else {
            let error = SystemError("listen", path)
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// A blocking connection to a Unix stream socket.
    public static func connectUnix(_ path: String) throws(SystemError) -> Int32 {
        var address = try unixAddress(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", path) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let error = SystemError("connect", path)
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// Waits until `fd` is readable, up to `timeout` seconds (nil = forever).
    /// Returns false on timeout.
    public static func waitReadable(_ fd: Int32, timeout: Double?) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms: Int32 = timeout.map { Int32(max(0, min(Double(Int32.max), $0 * 1000))) } ?? -1
        while true {
            let rc = poll(&p, 1, ms)
            if rc < 0 && errno == EINTR { continue }
            return rc > 0
        }
    }
}
