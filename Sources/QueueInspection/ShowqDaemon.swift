#if canImport(Glibc)
import Glibc
#endif
import DaemonSkeleton
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import NIOCore
import NIOPosix

/// showq - the queue listing service
///
/// Description: answers mailq (`sendmail -bp`) over `public/showq`: one
/// entry per queued message (ID, state, size, arrival, sender, the pending
/// recipients and why each waits). It only reads the queue.
///
/// Security: runs as `mail_owner`, chrooted to the spool; anyone may ask,
/// as with Postfix's showq (the listing shows envelopes, never content).
///
/// See also: sendmail(8), qmgr(8).
public enum ShowqDaemon {
    public static func main() -> Never {
        DaemonSkeleton.main(program: "showq", privilege: .mailOwner(chroot: true)) { _ in () } serve: { context, _ in
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let spool = context.spool
            let server = try IPCServer.serve(listenFD: context.listenFD(), group: group, idleTimeout: .seconds(60)) {
                IPCRequestHandler { listing($0, spool: spool) }
            }
            let close: @Sendable () -> Void = { server.close(promise: nil) }
            try MasterControl.watch(context, on: group.next(), drain: close, stop: close)
            try server.closeFuture.wait()
        }
    }

    /// The answer to a listing request: an entry per queued message, then
    /// the end; nil (the connection is closed) for anything else.
    static func listing(_ request: IPCFrame, spool: SpoolLayout) -> [IPCFrame]? {
        guard request.type == .showqList else { return nil }
        return QueueListing.entries(spool: spool).map(frame) + [IPCFrame(.showqEnd)]
    }

    /// One message as a frame.
    public static func frame(_ entry: QueueEntry) -> IPCFrame {
        var f = IPCFrame(.showqEntry)
        f.add(.queueID, entry.id)
        f.add(.routeClass, entry.state)
        f.add(.size, entry.size)
        f.add(.arrivalSeconds, entry.arrival)
        f.add(.sender, entry.sender)
        for r in entry.recipients where !r.status.isDone {
            f.add(.recipient, r.address)
            f.add(.text, r.reason ?? "")
        }
        return f
    }

    public static func entry(_ frame: IPCFrame) -> QueueEntry? {
        guard frame.type == .showqEntry, let id = frame.string(.queueID) else { return nil }
        let recipients = frame.strings(.recipient)
        let reasons = frame.strings(.text)
        return QueueEntry(
            id: id, state: frame.string(.routeClass) ?? "", size: frame.int(.size) ?? 0,
            arrival: frame.int(.arrivalSeconds) ?? 0, sender: frame.string(.sender) ?? "",
            recipients: recipients.enumerated().map { index, address in
                let reason = index < reasons.count && !reasons[index].isEmpty ? reasons[index] : nil
                return QueueEntry.Recipient(address: address, status: .pending, reason: reason)
            },
            nextAttempt: nil)
    }
}
