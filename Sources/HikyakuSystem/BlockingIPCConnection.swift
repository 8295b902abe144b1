#if canImport(Glibc)
import Glibc
#endif
import CShims
import HikyakuIPC

/// A blocking IPC connection over a Unix stream socket, for single-threaded
/// programs (local, and command-line tools). Every read has a timeout, and a
/// peer that dies mid-frame is reported, not waited for.
public final class BlockingIPCConnection {
    public let fd: Int32
    let path: String
    var buffer: [UInt8] = []
    public var timeout: Double

    public init(fd: Int32, path: String = "", timeout: Double = 60) {
        self.fd = fd
        self.path = path
        self.timeout = timeout
    }

    public convenience init(connectingTo path: String, timeout: Double = 60) throws(SystemError) {
        self.init(fd: try Sockets.connectUnix(path), path: path, timeout: timeout)
    }

    deinit { Glibc.close(fd) }

    public func send(_ frame: IPCFrame) throws(IPCError) {
        do {
            try FileIO.writeAll(fd, frame.encoded(), path: path)
        } catch {
            throw error.errno == EPIPE ? .peerClosed : .system(error.description)
        }
    }

    /// The next frame, or nil when the peer closed the connection between frames.
    public func receive(timeout override: Double? = nil) throws(IPCError) -> IPCFrame? {
        while true {
            if let (frame, used) = try IPCFrame.decode(buffer) {
                buffer.removeFirst(used)
                return frame
            }
            guard Sockets.waitReadable(fd, timeout: override ?? timeout) else { throw .timedOut }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw errno == ECONNRESET ? .peerClosed : .system(SystemError("recv", path).description)
            }
            if n == 0 {
                if buffer.isEmpty { return nil }
                throw .peerClosed
            }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// Whether the peer has closed its end (what it sent before may still
    /// be unread): a request from it would be answered to no one.
    public var peerHasClosed: Bool { hk_peer_closed(fd) != 0 }

    /// Sends a request and waits for its reply.
    public func request(_ frame: IPCFrame) throws(IPCError) -> IPCFrame {
        try send(frame)
        guard let reply = try receive() else { throw .peerClosed }
        return reply
    }
}
