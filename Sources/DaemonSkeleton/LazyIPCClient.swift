import HikyakuIPC
import NIOCore
import NIOPosix

/// A connection to a service socket that is opened when first needed and
/// re-opened after the service restarted. Confined to one event loop.
public final class LazyIPCClient: @unchecked Sendable {
    // All mutable state is touched on `eventLoop` only.
    public let path: String
    public let eventLoop: EventLoop
    let timeout: TimeAmount
    var client: IPCClient? = nil
    var connecting: EventLoopFuture<IPCClient>? = nil

    public init(path: String, eventLoop: EventLoop, timeout: TimeAmount = .seconds(30)) {
        self.path = path
        self.eventLoop = eventLoop
        self.timeout = timeout
    }

    /// The open connection, connecting if needed.
    public func connection() -> EventLoopFuture<IPCClient> {
        eventLoop.flatSubmit {
            if let client = self.client, client.isActive { return self.eventLoop.makeSucceededFuture(client) }
            if let connecting = self.connecting { return connecting }
            let future = IPCClient.connect(path: self.path, on: self.eventLoop, timeout: self.timeout)
            self.connecting = future
            future.whenComplete { result in
                self.connecting = nil
                if case .success(let client) = result { self.client = client }
            }
            return future
        }
    }

    /// Sends a request; for idempotent requests, one retry on a fresh
    /// connection when the old one turned out to be dead.
    public func request(_ frame: IPCFrame, idempotent: Bool = true) -> EventLoopFuture<IPCFrame> {
        connection().flatMap { client in
            client.request(frame).flatMapError { error in
                guard idempotent, let ipc = error as? IPCError, ipc == .peerClosed else {
                    return self.eventLoop.makeFailedFuture(error)
                }
                self.client = nil
                return self.connection().flatMap { $0.request(frame) }
            }
        }
    }

    /// Sends a frame that has no reply.
    public func send(_ frame: IPCFrame) -> EventLoopFuture<Void> {
        connection().flatMap { $0.send(frame) }
    }

    public var isConnected: Bool { client?.isActive ?? false }

    public func close() {
        eventLoop.execute {
            self.client?.close()
            self.client = nil
        }
    }
}
