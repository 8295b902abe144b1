#if canImport(Glibc)
import Glibc
#endif
import HikyakuSystem
import QueueFormat

/// A delivery agent's hold on the queue file it delivers from: the file open
/// with a shared flock(2) while the agent delivers, and the place where it
/// marks each recipient done the moment the delivery succeeded, before it
/// answers qmgr (as Postfix's agents do).
///
/// Both close the window in which a killed process makes mail go out twice.
/// An agent killed after a delivery leaves the mark, and qmgr, whose answer
/// never came, reads the file before it tries again. A qmgr that is killed
/// leaves its agents running; the next one moves active/ back to incoming/
/// and takes each file again exclusively before reading it
/// (QueueManager.activate), so it waits for the agents still holding the
/// file and then sees what they delivered. Several agents share one file's
/// lock: the recipients of one message go out in parallel.
///
/// The mark is written without fsync: the page cache outlives any process,
/// and a power cut before the file is next synced repeats a delivery, never
/// loses one (the same rule as qmgr's own marks).
public final class QueueFileHold {
    public let fd: Int32
    public let path: String
    /// The envelope records (qmgr verified the whole file before handing it
    /// over); each recipient knows where its status byte is.
    public let envelope: QueueEnvelope

    /// Opens `path` (read-write: the marks go through this descriptor,
    /// wherever a restarted qmgr renames the file meanwhile), waits for the
    /// shared lock, which only a qmgr reading the file delays, and reads the
    /// envelope up to `contentOffset`.
    public init(path: String, contentOffset: Int) throws {
        // Never through a symlink: local opens it as root.
        fd = try FileIO.open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK)
        self.path = path
        do {
            guard try FileIO.fstat(fd, path: path).st_mode & S_IFMT == S_IFREG else {
                throw SystemError(errno: EPERM, operation: "open (not a plain file)", path: path)
            }
            try FileIO.flock(fd, .shared, path: path)
            let head = try FileIO.pread(fd, count: contentOffset, at: 0, path: path)
            envelope = try head.withUnsafeBytes { buffer in try QueueFileReader.parseEnvelope(buffer).0 }
        } catch {
            FileIO.close(fd)
            throw error
        }
    }

    deinit { FileIO.close(fd) }

    /// Marks recipients (by their place in the envelope) delivered.
    public func markDelivered(_ index: Int) throws(SystemError) {
        guard envelope.recipients.indices.contains(index) else { return }
        try FileIO.pwriteAll(fd, [RecipientStatus.delivered.rawValue], at: envelope.recipients[index].statusOffset, path: path)
    }

    /// Which of `indexes` the queue file at `path`, whose envelope is
    /// `envelope`, marks delivered (qmgr, after an agent died without
    /// answering).
    public static func delivered(_ indexes: [Int], of envelope: QueueEnvelope, path: String) -> [Int] {
        guard let fd = try? FileIO.open(path, O_RDONLY) else { return [] }
        defer { FileIO.close(fd) }
        return indexes.filter { index in
            guard envelope.recipients.indices.contains(index),
                  let byte = try? FileIO.pread(fd, count: 1, at: envelope.recipients[index].statusOffset, path: path)
            else { return false }
            return byte[0] == RecipientStatus.delivered.rawValue
        }
    }
}
