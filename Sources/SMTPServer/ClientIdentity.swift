#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The client's address and (reverse DNS) name, as sendmail's
/// `${client_addr}`, `${client_name}` and `${client_resolve}` describe them.
///
/// The lookup never delays the greeting: it runs on a thread pool with a
/// short timeout while the session starts. A name counts only when its
/// forward lookup gives the address back (else FORGED); no name is FAIL, a
/// timeout or server failure is TEMP, and the name is then `[address]`.
/// Loopback clients are never looked up: 127.0.0.1 and ::1 are `localhost`,
/// other loopback addresses have no name (FAIL), as on a typical host.
final class ClientIdentity: @unchecked Sendable {
    enum Resolve: String {
        case ok = "OK", fail = "FAIL", forged = "FORGED", temp = "TEMP"
    }

    // Written on the event loop when the lookup finishes; read there.
    let address: String
    let port: Int
    private(set) var name: String
    private(set) var resolve: Resolve
    let isLoopback: Bool
    private(set) var lookup: EventLoopFuture<Void>? = nil

    init(remote: SocketAddress?) {
        var text = remote?.ipAddress ?? "unknown"
        if text.hasPrefix("::ffff:"), text.contains(".") { text = String(text.dropFirst(7)) }
        address = text
        port = remote?.port ?? 0
        isLoopback = text == "::1" || text.hasPrefix("127.")
        if text == "127.0.0.1" || text == "::1" {
            name = "localhost"
            resolve = .ok
        } else {
            name = text.contains(":") ? "[IPv6:\(text)]" : "[\(text)]"
            resolve = isLoopback ? .fail : .temp
        }
    }

    /// The local host itself (127.0.0.1, ::1): its own programs, greeted
    /// at once and never held to the pipelining rules.
    var isLoopbackHost: Bool { ClientLimits.isLoopback(address) }

    /// `192.0.2.1` or `IPv6:2001:db8::1`, for the access map.
    var policyAddress: String { address.contains(":") ? "IPv6:\(address)" : address }

    /// `name[address]`, as in every Postfix log line.
    var logName: String {
        let shown = name.hasPrefix("[") ? "unknown" : name
        return "\(shown)[\(address)]"
    }

    /// Starts the lookup; the future completes when it is done or timed out.
    @discardableResult
    func lookUp(pool: NIOThreadPool, on eventLoop: EventLoop, timeout: TimeAmount) -> EventLoopFuture<Void> {
        if let lookup { return lookup }
        guard !isLoopback, address != "unknown" else {
            let done = eventLoop.makeSucceededVoidFuture()
            lookup = done
            return done
        }
        let promise = eventLoop.makePromise(of: Void.self)
        lookup = promise.futureResult
        let address = self.address
        let timer = eventLoop.scheduleTask(in: timeout) {
            // Too slow: TEMP, as sendmail says of a server that did not answer.
            promise.succeed(())
        }
        pool.submit { state in
            guard state == .active else { return }
            let (resolve, name) = ClientIdentity.reverse(address)
            eventLoop.execute {
                timer.cancel()
                if self.resolve == .temp {
                    self.resolve = resolve
                    if let name { self.name = name }
                }
                promise.succeed(())
            }
        }
        return promise.futureResult
    }

    /// PTR lookup, then a forward lookup of the name that must give the
    /// address back.
    static func reverse(_ address: String) -> (Resolve, String?) {
        guard let socketAddress = try? SocketAddress(ipAddress: address, port: 0) else { return (.fail, nil) }
        var host = [CChar](repeating: 0, count: 1025)
        let rc: Int32 = socketAddress.withSockAddr { ptr, length in
            getnameinfo(ptr, socklen_t(length), &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
        }
        if rc == EAI_AGAIN || rc == EAI_FAIL { return (.temp, nil) }
        guard rc == 0 else { return (.fail, nil) }
        let name = String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x2d || $0 == 0x2e }) else {
            return (.fail, nil)
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>? = nil
        let forward = getaddrinfo(name, nil, &hints, &result)
        defer { if result != nil { freeaddrinfo(result) } }
        if forward == EAI_AGAIN { return (.temp, nil) }
        guard forward == 0 else { return (.forged, name) }
        var entry = result
        while let current = entry {
            if let sockaddr = current.pointee.ai_addr,
               let found = try? SocketAddress(sockaddr, size: Int(current.pointee.ai_addrlen)),
               found.ipAddress == address {
                return (.ok, name)
            }
            entry = current.pointee.ai_next
        }
        return (.forged, name)
    }
}

extension SocketAddress {
    init(_ pointer: UnsafeMutablePointer<sockaddr>, size: Int) throws {
        switch Int32(pointer.pointee.sa_family) {
        case AF_INET:
            let v4 = pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
            self = SocketAddress(v4, host: "")
        case AF_INET6:
            let v6 = pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
            self = SocketAddress(v6, host: "")
        default:
            throw SocketAddressError.unsupported
        }
    }
}
