#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import HikyakuConfig
import HikyakuIPC
import HikyakuSystem
import MailCore
import QueueFormat
import QueueInspection

/// `hikyaku queue`: see and steer the queue. Every change is a rename
/// between queue directories (atomic), so nothing a daemon is reading is ever
/// rewritten; mail in active/ is being delivered and is left alone. It works
/// with or without the master running; with it, qmgr is told at once.
struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue", abstract: "List, show, hold, release, requeue, delete and flush queued mail.",
        subcommands: [List.self, Show.self, Hold.self, Release.self, Requeue.self, Delete.self, Flush.self, Summary.self])

    struct Filters: ParsableArguments {
        @Option(help: "Only mail from this sender (a substring, case-insensitive).")
        var sender: String?
        @Option(help: "Only mail with a pending recipient matching this substring.")
        var recipient: String?
        @Option(help: "Only mail with a pending recipient in this domain (or a subdomain).")
        var domain: String?
        @Option(name: .customLong("older-than"), help: "Only mail queued longer than this (300s, 5m, 1h, 2d).")
        var olderThan: String?
        @Option(help: "Only mail in this state: incoming, active, deferred or hold.")
        var state: String?

        /// The states a message can be listed in.
        static let states = ["incoming", "active", "deferred", "hold"]

        /// A filter that cannot match as meant is an error, not a filter
        /// that matches everything (or nothing).
        func validate() throws {
            if let olderThan, Configuration.parseTime(olderThan) == nil {
                throw ValidationError("--older-than \(olderThan): expected an age like 300s, 5m, 1h, 2d or 1w, or a number of seconds")
            }
            if let state, !Self.states.contains(state) {
                throw ValidationError("--state \(state): expected one of \(Self.states.joined(separator: ", "))")
            }
        }

        func matches(_ entry: QueueEntry, now: Int) -> Bool {
            if let sender, !entry.sender.lowercased().contains(sender.lowercased()) { return false }
            let pending = entry.recipients.filter { !$0.status.isDone }
            if let recipient, !pending.contains(where: { $0.address.lowercased().contains(recipient.lowercased()) }) { return false }
            if let domain {
                let d = domain.lowercased()
                if !entry.pendingDomains.contains(where: { $0 == d || $0.hasSuffix("." + d) }) { return false }
            }
            if let olderThan, let seconds = Configuration.parseTime(olderThan), now - entry.arrival < seconds { return false }
            if let state, entry.state != state { return false }
            return true
        }
    }

    static func spool(_ options: ConfigOption) throws -> SpoolLayout {
        let config = try options.load()
        let spool = SpoolLayout(root: config.string("queue_directory"))
        guard access(spool.directory(.incoming), R_OK | W_OK | X_OK) == 0 else {
            throw ValidationError("cannot use \(spool.root): hikyaku queue needs root (or the mail owner)")
        }
        return spool
    }

    /// Where a message is now.
    static func locate(_ id: String, in spool: SpoolLayout) -> SpoolLayout.Queue? {
        guard QueueID.isValid(id) else { return nil }
        return SpoolLayout.Queue.allCases.first { FileIO.lstat(spool.file($0, id)) != nil }
    }

    /// The IDs an action applies to: the arguments, or ALL of `from`.
    static func targets(_ ids: [String], from queues: [SpoolLayout.Queue], spool: SpoolLayout) -> [(String, SpoolLayout.Queue?)] {
        if ids.count == 1 && ids[0] == "ALL" {
            return queues.flatMap { queue in
                ((try? FileIO.listDirectory(spool.directory(queue))) ?? []).filter { QueueID.isValid($0) }.sorted().map { ($0, queue) }
            }
        }
        return ids.map { ($0, locate($0, in: spool)) }
    }

    /// Moves a message between queues; a message in active/ is left alone.
    static func move(_ ids: [String], from queues: [SpoolLayout.Queue], to target: SpoolLayout.Queue,
                     spool: SpoolLayout, verb: String, touch: Bool = false) throws {
        var moved = 0
        var failed = false
        for (id, current) in targets(ids, from: queues, spool: spool) {
            guard let current else {
                print("hikyaku: \(id): no such message in the queue")
                failed = true
                continue
            }
            guard queues.contains(current) else {
                print("hikyaku: \(id): in \(current.rawValue)/ (\(current == .active ? "being delivered now; try again" : "not \(verb)able")); left alone")
                failed = true
                continue
            }
            let from = spool.file(current, id), to = spool.file(target, id)
            do {
                if touch { try FileIO.setModificationTime(from, seconds: WallClock.seconds()) }
                try FileIO.rename(from, to)
                moved += 1
                if target == .incoming { wake(spool, id) }
            } catch {
                print("hikyaku: \(id): \(error)")
                failed = true
            }
        }
        print("hikyaku: \(moved) message\(moved == 1 ? "" : "s") \(verb == "hold" ? "held" : verb + "d")")
        if failed { throw ExitCode(1) }
    }

    /// Tells qmgr about a message in incoming/ (if qmgr runs).
    static func wake(_ spool: SpoolLayout, _ id: String) {
        guard let connection = try? BlockingIPCConnection(connectingTo: spool.socket(.qmgr), timeout: 5) else { return }
        var frame = IPCFrame(.qmgrQueued)
        frame.add(.queueID, id)
        try? connection.send(frame)
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List queued mail (mailq's layout, or JSON lines like postqueue -j).")
        @OptionGroup var options: ConfigOption
        @OptionGroup var filters: Filters
        @Flag(help: "One JSON object per message (postqueue -j's fields).")
        var json = false

        func run() throws {
            let spool = try QueueCommand.spool(options)
            let now = WallClock.seconds()
            let entries = QueueListing.entries(spool: spool).filter { filters.matches($0, now: now) }
            if json {
                var out = ""
                for entry in entries { out += QueueListing.json(entry) + "\n" }
                print(out, terminator: "")
            } else {
                print(QueueListing.mailq(entries), terminator: "")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one message: envelope, each recipient's status, headers and body.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The queue ID.")
        var id: String
        @Flag(help: "Only the envelope, no content.")
        var envelope = false

        func run() throws {
            let spool = try QueueCommand.spool(options)
            guard let queue = QueueCommand.locate(id, in: spool) else { throw ValidationError("\(id): no such message in the queue") }
            let path = spool.file(queue, id)
            let bytes = try FileIO.readFile(path)
            let parsed: QueueEnvelope
            do {
                parsed = try QueueFileReader.parse(bytes)
            } catch {
                throw ValidationError("\(path): damaged queue file (\(error))")
            }
            let reasons = QueueListing.deferReasons(spool: spool, id: id)
            print("queue id: \(id)")
            print("state: \(queue.rawValue)")
            print("arrival: \(WallClock.localTime(parsed.arrivalSeconds).rfc5322)")
            if queue == .deferred, let st = FileIO.stat(path) {
                print("next attempt: \(WallClock.localTime(st.st_mtim.tv_sec).rfc5322)")
            }
            print("sender: <\(parsed.sender)>")
            print("size: \(parsed.contentLength)")
            for key in parsed.info.keys.sorted() { print("\(key): \(parsed.info[key]!)") }
            for recipient in parsed.recipients {
                let status: String
                switch recipient.status {
                case .pending, .pendingWarned:
                    status = (reasons[recipient.address].map { "deferred (\($0))" } ?? "pending")
                        + (recipient.status == .pendingWarned ? ", sender warned of the delay" : "")
                case .delivered: status = "delivered"
                case .bounced: status = "bounced"
                case .dropped: status = "dropped"
                }
                print("recipient: <\(recipient.address)> \(status)")
                // RFC 3461 requests, and the address before alias expansion.
                let dsn = recipient.dsn
                if !dsn.notify.isEmpty { print("  notify: \(dsn.notify)") }
                if let original = dsn.originalRecipient { print("  orcpt: \(original)") }
                if !recipient.originalRecipient.isEmpty { print("  original recipient: <\(recipient.originalRecipient)>") }
            }
            guard !envelope else { return }
            print("")
            let content = bytes[parsed.contentOffset..<(parsed.contentOffset + parsed.contentLength)]
            print(String(decoding: content, as: UTF8.self), terminator: "")
        }
    }

    struct Hold: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put messages on hold (ID... or ALL): nothing is delivered until released.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Queue IDs, or ALL.") var ids: [String]

        func run() throws {
            try QueueCommand.move(ids, from: [.incoming, .deferred], to: .hold, spool: try QueueCommand.spool(options), verb: "hold")
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release held messages (ID... or ALL) for delivery now.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Queue IDs, or ALL.") var ids: [String]

        func run() throws {
            try QueueCommand.move(ids, from: [.hold], to: .incoming, spool: try QueueCommand.spool(options), verb: "release")
        }
    }

    struct Requeue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send messages (ID... or ALL) through routing again now, under the current maps and configuration.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Queue IDs, or ALL.") var ids: [String]

        func run() throws {
            try QueueCommand.move(ids, from: [.deferred, .hold, .incoming], to: .incoming, spool: try QueueCommand.spool(options),
                                  verb: "requeue")
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete messages (ID... or ALL) without delivering them or telling anyone.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "Queue IDs, or ALL.") var ids: [String]

        func run() throws {
            let spool = try QueueCommand.spool(options)
            var deleted = 0
            var failed = false
            for (id, current) in QueueCommand.targets(ids, from: [.incoming, .deferred, .hold, .corrupt], spool: spool) {
                guard let current, current != .active, current != .tmp else {
                    print("hikyaku: \(id): \(current == nil ? "no such message in the queue" : "being delivered now; try again")")
                    failed = true
                    continue
                }
                // Renamed away first, so no daemon can take it half-deleted.
                let doomed = spool.file(.tmp, "deleted." + id)
                do {
                    try FileIO.rename(spool.file(current, id), doomed)
                    try FileIO.unlink(doomed)
                    _ = unlink(spool.deferDirectory + "/" + id)
                    _ = unlink(spool.deliveredMembersFile(id))
                    deleted += 1
                } catch {
                    print("hikyaku: \(id): \(error)")
                    failed = true
                }
            }
            print("hikyaku: \(deleted) message\(deleted == 1 ? "" : "s") deleted")
            if failed { throw ExitCode(1) }
        }
    }

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Try every deferred message again now.")
        @OptionGroup var options: ConfigOption

        func run() throws {
            let spool = try QueueCommand.spool(options)
            if let connection = try? BlockingIPCConnection(connectingTo: spool.socket(.qmgr), timeout: 5),
               (try? connection.send(IPCFrame(.qmgrFlush))) != nil {
                print("hikyaku: the queue manager is trying the deferred queue now")
                return
            }
            // No qmgr: make every deferred message due, for when it starts.
            let names = ((try? FileIO.listDirectory(spool.directory(.deferred))) ?? []).filter { QueueID.isValid($0) }
            for name in names { try? FileIO.setModificationTime(spool.file(.deferred, name), seconds: WallClock.seconds()) }
            print("hikyaku: the mail system is not running; \(names.count) deferred message(s) are due when it starts")
        }
    }

    struct Summary: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deferred mail by destination and reason, with ages (like Postfix's qshape).")
        @OptionGroup var options: ConfigOption
        @Flag(help: "One JSON object per destination.")
        var json = false

        func run() throws {
            let spool = try QueueCommand.spool(options)
            let now = WallClock.seconds()
            let buckets = [5, 10, 20, 40, 80, 160, 320, 640, 1280]
            var rows: [String: (total: Int, ages: [Int], reasons: [String: Int])] = [:]
            for entry in QueueListing.entries(spool: spool, states: [.deferred]) {
                let minutes = (now - entry.arrival) / 60
                let bucket = buckets.firstIndex(where: { minutes < $0 }) ?? buckets.count
                for recipient in entry.recipients where !recipient.status.isDone {
                    let domain = recipient.address.split(separator: "@").last.map { $0.lowercased() } ?? ""
                    var row = rows[domain] ?? (0, [Int](repeating: 0, count: buckets.count + 1), [:])
                    row.total += 1
                    row.ages[bucket] += 1
                    row.reasons[recipient.reason ?? "(no reason recorded)", default: 0] += 1
                    rows[domain] = row
                }
            }
            let sorted = rows.sorted { $0.value.total > $1.value.total || ($0.value.total == $1.value.total && $0.key < $1.key) }
            if json {
                for (domain, row) in sorted {
                    let reasons = row.reasons.sorted { $0.key < $1.key }
                        .map { "{\"reason\": \(QueueListing.jsonString($0.key)), \"count\": \($0.value)}" }
                    print("{\"destination\": \(QueueListing.jsonString(domain)), \"total\": \(row.total), "
                          + "\"ages_minutes\": {\(zip(buckets.map { "\"<\($0)\"" } + ["\"1280+\""], row.ages).map { "\($0): \($1)" }.joined(separator: ", "))}, "
                          + "\"reasons\": [\(reasons.joined(separator: ", "))]}")
                }
                return
            }
            let header = ["T"] + buckets.map(String.init) + ["1280+"]
            print(String(repeating: " ", count: 32) + header.map { $0.leftPadded(6) }.joined())
            let total = sorted.reduce(0) { $0 + $1.value.total }
            var totals = [Int](repeating: 0, count: buckets.count + 1)
            for (_, row) in sorted { for k in 0..<totals.count { totals[k] += row.ages[k] } }
            print("TOTAL".leftPadded(32) + ([total] + totals).map { String($0).leftPadded(6) }.joined())
            for (domain, row) in sorted {
                print(String(domain.suffix(31)).leftPadded(32) + ([row.total] + row.ages).map { String($0).leftPadded(6) }.joined())
                for (reason, count) in row.reasons.sorted(by: { $0.value > $1.value }) {
                    print("      \(count) × \(reason)")
                }
            }
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
