#if canImport(Glibc)
import Glibc
#endif
import HikyakuSystem
import Logging
import NIOCore

/// What smtpd does when accept(2) fails because the process (EMFILE) or the
/// system (ENFILE) is out of file descriptors.
///
/// Left alone, the listening socket stays readable, every accept fails, and
/// the event loop spins at full speed while the clients in the listen queue
/// wait for a greeting that never comes. Instead smtpd keeps one descriptor
/// in reserve: when accept fails for want of one, it gives the reserve up,
/// accepts each waiting client, answers `421 4.3.2` and closes at once, then
/// takes the reserve back. The condition is logged at most once a minute
/// with the number of clients turned away. Accepting is also paused briefly
/// after any accept error (NIO's AcceptBackoffHandler), so a reserve lost to
/// another thread cannot turn into a busy loop.
final class DescriptorExhaustionHandler: ChannelInboundHandler {
    typealias InboundIn = Channel

    let listenFD: Int32
    let reply: [UInt8]
    let logger: Logger
    var reserve: Int32
    var refusedSinceLog = 0
    var lastLog: Int? = nil
    static let logInterval = 60

    init(listenFD: Int32, hostname: String, logger: Logger) {
        self.listenFD = listenFD
        reply = Array("421 4.3.2 \(hostname) Error: too many connections, try again later\r\n".utf8)
        self.logger = logger
        reserve = Self.openReserve()
    }

    static func openReserve() -> Int32 {
        // The root directory exists in any chroot.
        open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    }

    /// The accept errors that mean "no descriptor for the new client".
    static func isExhaustion(_ error: Error) -> Bool {
        guard let io = error as? IOError else { return false }
        return io.errnoCode == EMFILE || io.errnoCode == ENFILE
    }

    /// How long to stop accepting after an accept error.
    static func backoff(_ error: IOError) -> TimeAmount? {
        error.errnoCode == EMFILE || error.errnoCode == ENFILE ? .milliseconds(250) : .milliseconds(50)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard Self.isExhaustion(error) else {
            context.fireErrorCaught(error)
            return
        }
        refusedSinceLog += shedWaitingClients()
        let now = WallClock.seconds()
        if lastLog.map({ now - $0 >= Self.logInterval }) ?? true {
            let reason = String(cString: strerror((error as! IOError).errnoCode))
            logger.warning("out of file descriptors accepting connections (\(reason)): \(refusedSinceLog) client(s) refused with 421 since the last report; raise the open file limit (LimitNOFILE) or lower smtpd_session_limit")
            lastLog = now
            refusedSinceLog = 0
        }
    }

    /// Turns away every client waiting in the listen queue; returns how many.
    func shedWaitingClients() -> Int {
        if reserve < 0 { reserve = Self.openReserve() }
        guard reserve >= 0 else { return 0 }
        close(reserve)
        reserve = -1
        var refused = 0
        while true {
            // The listening socket is non-blocking (NIO's): EAGAIN ends this.
            let client = accept(listenFD, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                // EAGAIN: the queue is empty; EMFILE: another thread took
                // the freed descriptor first.
                break
            }
            _ = reply.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            close(client)
            refused += 1
        }
        reserve = Self.openReserve()
        return refused
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if reserve >= 0 {
            close(reserve)
            reserve = -1
        }
    }
}
