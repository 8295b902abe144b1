/// The queue directories and service sockets under the spool. A chrooted
/// daemon sees the spool as `/`, the others as `queue_directory`; both build
/// the same layout from their own root.
public struct SpoolLayout: Sendable, Equatable {
    public let root: String

    public init(root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    public enum Queue: String, Sendable, CaseIterable {
        /// Being written by cleanup; never read by anyone else.
        case tmp
        /// Committed and waiting for the queue manager.
        case incoming
        /// In the queue manager's hands.
        case active
        /// Waiting for a retry; the file's mtime is the next try.
        case deferred
        /// Put aside by the administrator.
        case hold
        /// Failed its checksum or structure; kept for inspection.
        case corrupt
        /// Dropped by the sendmail command, for pickup.
        case maildrop
    }

    /// Services in private/ (only hikyaku's programs reach them).
    public enum Service: String, Sendable, CaseIterable {
        case cleanup, qmgr, local, aliasd, smtp
    }

    /// Services in public/, reached by the sendmail command: pickup through
    /// the setgid hikyaku-drop helper, showq by anyone (mailq).
    public enum PublicService: String, Sendable, CaseIterable {
        case pickup, showq
    }

    public func join(_ name: String) -> String { root == "/" ? "/" + name : root + "/" + name }

    public func directory(_ queue: Queue) -> String { join(queue.rawValue) }
    public func file(_ queue: Queue, _ name: String) -> String { join(queue.rawValue + "/" + name) }
    public var privateDirectory: String { join("private") }
    public var publicDirectory: String { join("public") }
    public var pidDirectory: String { join("pid") }
    /// defer/ID: why each recipient of a deferred message is waiting.
    public var deferDirectory: String { join("defer") }
    /// defer/ID.leaves: the members of an alias or .forward that local
    /// delivered for a recipient whose expansion has not finished yet.
    public func deliveredMembersFile(_ id: String) -> String { deferDirectory + "/" + id + ".leaves" }
    public func socket(_ service: Service) -> String { join("private/" + service.rawValue) }
    public var masterPIDFile: String { join("pid/master.pid") }
    public func socket(_ service: PublicService) -> String { join("public/" + service.rawValue) }
}
