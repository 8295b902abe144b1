#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The client's address and (reverse DNS) name. The lookup never delays the
/// session: the greeting goes out at once, the lookup runs on a thread pool
/// with a short timeout, and anything not known in time is `unknown`.
/// Loopback clients are never looked up.
final class ClientIdentity: @unchecked Sendable {
    // Written once on the event loop when the lookup finishes; read there.
    let address: String
    let port: Int
    private(set) var name: String
    let isLoopback: Bool

    init(remote: SocketAddress?) {
        address = remote?.ipAddress ?? "unknown"
        port = remote?.port ?? 0
        isLoopback = address == "::1" || address.hasPrefix("127.") || address.hasPrefix("::ffff:127.")
        // 127.0.0.1 and ::1 are localhost (as /etc/hosts says everywhere);
        // other loopback addresses are not looked up and stay unknown.
        name = (address == "127.0.0.1" || address == "::1" || address == "::ffff:127.0.0.1") ? "localhost" : "unknown"
    }

    /// `name[address]`, as in every Postfix log line.
    var logName: String { "\(name)[\(address)]" }

    func lookUp(pool: NIOThreadPool, on eventLoop: EventLoop, timeout: TimeAmount) -> EventLoopFuture<Void> {
        guard !isLoopback, address != "unknown" else { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        let address = self.address
        let timer = eventLoop.scheduleTask(in: timeout) { promise.succeed(()) }
        pool.submit { state in
            guard state == .active, let name = ClientIdentity.reverseName(address) else { return }
            eventLoop.execute {
                timer.cancel()
                if self.name == "unknown" { self.name = name }
                promise.succeed(())
            }
        }
        return promise.futureResult
    }

    /// getnameinfo with NI_NAMEREQD; the name is kept only if it is a
    /// plausible host name.
    static func reverseName(_ address: String) -> String? {
        guard let socketAddress = try? SocketAddress(ipAddress: address, port: 0) else { return nil }
        var host = [CChar](repeating: 0, count: 1025)
        let rc: Int32 = socketAddress.withSockAddr { ptr, length in
            getnameinfo(ptr, socklen_t(length), &host, socklen_t(host.count), nil, 0, NI_NAMEREQD)
        }
        guard rc == 0 else { return nil }
        let name = String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x2d || $0 == 0x2e }) else {
            return nil
        }
        return name
    }
}
