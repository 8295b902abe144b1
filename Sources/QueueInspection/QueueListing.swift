#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig
import HikyakuSystem
import MailCore
import QueueFormat

/// One message in the queue, as mailq and `hikyaku queue` show it.
public struct QueueEntry: Sendable, Equatable {
    public var id: String
    /// incoming, active, deferred or hold.
    public var state: String
    public var size: Int
    public var arrival: Int
    public var sender: String
    public var recipients: [Recipient]
    /// For deferred mail: when the next attempt is due.
    public var nextAttempt: Int?

    public struct Recipient: Sendable, Equatable {
        public var address: String
        public var status: RecipientStatus
        /// Why delivery was deferred, if it was.
        public var reason: String?
    }

    /// The domain of each pending recipient (for summaries and filters).
    public var pendingDomains: [String] {
        recipients.filter { !$0.status.isDone }.map { $0.address.split(separator: "@").last.map { $0.lowercased() } ?? "" }
    }
}

/// Reads the queue without disturbing the programs that use it: only the
/// envelope of each file is read, nothing is written, and a file that
/// moves or vanishes meanwhile is simply skipped.
public enum QueueListing {
    public static let states: [SpoolLayout.Queue] = [.incoming, .active, .deferred, .hold]

    public static func entries(spool: SpoolLayout, states: [SpoolLayout.Queue] = QueueListing.states) -> [QueueEntry] {
        var out: [QueueEntry] = []
        for state in states {
            for name in ((try? FileIO.listDirectory(spool.directory(state))) ?? []).sorted() where QueueID.isValid(name) {
                if let entry = entry(spool: spool, state: state, id: name) { out.append(entry) }
            }
        }
        return out
    }

    public static func entry(spool: SpoolLayout, state: SpoolLayout.Queue, id: String) -> QueueEntry? {
        let path = spool.file(state, id)
        guard let fd = try? FileIO.open(path, O_RDONLY) else { return nil }
        defer { FileIO.close(fd) }
        guard let st = try? FileIO.fstat(fd, path: path) else { return nil }
        // The envelope is at the start; a first read of 64 KiB almost always
        // holds it, and a longer one is read whole.
        var bytes = (try? FileIO.pread(fd, count: min(Int(st.st_size), 65536), at: 0, path: path)) ?? []
        var parsed = bytes.withUnsafeBytes { try? QueueFileReader.parseEnvelope($0) }
        if parsed == nil && st.st_size > 65536 {
            bytes = (try? FileIO.readAll(fd, path: path)) ?? []
            parsed = bytes.withUnsafeBytes { try? QueueFileReader.parseEnvelope($0) }
        }
        guard let (envelope, _) = parsed else { return nil }
        let reasons = deferReasons(spool: spool, id: id)
        let size = max(0, Int(st.st_size) - envelope.contentOffset - QueueFileConstants.endRecordSize)
        return QueueEntry(
            id: id, state: state.rawValue, size: size, arrival: envelope.arrivalSeconds, sender: envelope.sender,
            recipients: envelope.recipients.map {
                QueueEntry.Recipient(address: $0.address, status: $0.status, reason: reasons[$0.address])
            },
            nextAttempt: state == .deferred ? st.st_mtim.tv_sec : nil)
    }

    /// defer/ID: `recipient TAB reason` lines qmgr writes when it defers.
    public static func deferReasons(spool: SpoolLayout, id: String) -> [String: String] {
        guard let bytes = try? FileIO.readFile(spool.join("defer/" + id), limit: 1 << 20) else { return [:] }
        var out: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1)
            if parts.count == 2 { out[String(parts[0])] = String(parts[1]) }
        }
        return out
    }

    /// Postfix's mailq layout.
    public static func mailq(_ entries: [QueueEntry]) -> String {
        guard !entries.isEmpty else { return "Mail queue is empty\n" }
        let idWidth = max(10, entries.map { $0.id.count + 1 }.max() ?? 10)
        var out = "-Queue ID-" + String(repeating: " ", count: idWidth - 10) + "  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
        var total = 0
        for entry in entries {
            total += entry.size
            let mark = entry.state == "active" ? "*" : (entry.state == "hold" ? "!" : "")
            let id = (entry.id + mark).padding(idWidth)
            let size = String(entry.size).leftPadding(8)
            let date = WallClock.localTime(entry.arrival)
            let arrival = "\(date.asctime.prefix(19))"
            out += "\(id)  \(size) \(arrival)  \(entry.sender.isEmpty ? "MAILER-DAEMON" : entry.sender)\n"
            let indent = String(repeating: " ", count: idWidth + 2 + 8 + 1 + 19 + 2)
            var lastReason: String? = nil
            for recipient in entry.recipients where !recipient.status.isDone {
                if let reason = recipient.reason, reason != lastReason {
                    out += "(\(reason))\n"
                    lastReason = reason
                }
                out += indent + recipient.address + "\n"
            }
            out += "\n"
        }
        let kbytes = (total + 1023) / 1024
        out += "-- \(kbytes) Kbytes in \(entries.count) Request\(entries.count == 1 ? "" : "s").\n"
        return out
    }

    /// `postqueue -j`'s JSON, one object per line.
    public static func json(_ entry: QueueEntry) -> String {
        var recipients: [String] = []
        for r in entry.recipients where !r.status.isDone {
            var item = "{\"address\": \(jsonString(r.address))"
            if let reason = r.reason { item += ", \"delay_reason\": \(jsonString(reason))" }
            recipients.append(item + "}")
        }
        return "{\"queue_name\": \(jsonString(entry.state)), \"queue_id\": \(jsonString(entry.id)), "
            + "\"arrival_time\": \(entry.arrival), \"message_size\": \(entry.size), \"forced_expire\": false, "
            + "\"sender\": \(jsonString(entry.sender)), \"recipients\": [\(recipients.joined(separator: ", "))]}"
    }

    public static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadding(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
