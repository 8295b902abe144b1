import DaemonSkeleton
import MailCore

/// Where a job goes.
enum Transport: Equatable {
    case local
    /// sendmail's mailer and host field (`esmtp`, `[relay.example.net]:587`).
    case smtp(mailer: String, nexthop: String)
}

/// One request to a delivery agent.
struct DeliveryJob {
    let message: ActiveMessage
    var recipientIndexes: [Int]
    let transport: Transport
    /// Jobs with the same key share a concurrency limit: one mailbox for
    /// local, one destination for SMTP.
    let concurrencyKey: String
    /// Times the agent vanished while it had this job.
    var agentFailures = 0
}

/// A connection to one delivery process (local) or one delivery slot of
/// smtp-client, used for one job at a time.
final class AgentSlot {
    let client: LazyIPCClient
    var busy = false

    init(client: LazyIPCClient) {
        self.client = client
    }
}

/// First-in first-out jobs, kept per key, handed out round-robin over the
/// keys, so one destination with thousands of messages never starves
/// another with one (Postfix's per-destination queues).
struct KeyedJobQueue {
    private var queues: [String: JobFIFO] = [:]
    /// Keys with waiting jobs, in round-robin order.
    private var keys: [String] = []
    private var cursor = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func append(_ job: DeliveryJob) {
        if queues[job.concurrencyKey] == nil {
            queues[job.concurrencyKey] = JobFIFO()
            keys.append(job.concurrencyKey)
        }
        queues[job.concurrencyKey]!.push(job)
        count += 1
    }

    /// The next job whose key `canStart` allows, taking keys in turn.
    mutating func next(where canStart: (String) -> Bool) -> DeliveryJob? {
        guard !keys.isEmpty else { return nil }
        for step in 0..<keys.count {
            let index = (cursor + step) % keys.count
            let key = keys[index]
            guard canStart(key) else { continue }
            let job = queues[key]!.pop()!
            count -= 1
            if queues[key]!.isEmpty {
                queues[key] = nil
                keys.remove(at: index)
                cursor = keys.isEmpty ? 0 : index % keys.count
            } else {
                cursor = (index + 1) % keys.count
            }
            return job
        }
        return nil
    }

    /// Takes every job waiting for `key`.
    mutating func removeAll(for key: String) -> [DeliveryJob] {
        guard var fifo = queues[key] else { return [] }
        var out: [DeliveryJob] = []
        while let job = fifo.pop() { out.append(job) }
        queues[key] = nil
        if let index = keys.firstIndex(of: key) {
            keys.remove(at: index)
            if cursor > index { cursor -= 1 }
            if cursor >= keys.count { cursor = 0 }
        }
        count -= out.count
        return out
    }
}

/// A queue without O(n) removal at the front.
struct JobFIFO {
    private var items: [DeliveryJob?] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }

    mutating func push(_ job: DeliveryJob) {
        items.append(job)
    }

    mutating func pop() -> DeliveryJob? {
        guard head < items.count else { return nil }
        let job = items[head]
        items[head] = nil
        head += 1
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return job
    }
}

/// How many deliveries one remote destination gets at once, after Postfix:
/// start at `initial`, grow by 1/window for each delivery that reached a
/// server (about one more per round of deliveries), shrink by one for each
/// that reached none; when a failure comes at a window of one, the
/// destination is suspended: its waiting mail is deferred until
/// `deadUntil`, and other destinations go on as before.
struct DestinationState {
    var window: Double
    var inFlight = 0
    var deadUntil: Int = 0
    var lastFailure = ""

    init(initial: Int) {
        window = Double(max(1, initial))
    }

    func canStart(limit: Int, now: Int) -> Bool {
        deadUntil <= now && inFlight < min(limit, max(1, Int(window)))
    }

    mutating func succeeded(limit: Int) {
        deadUntil = 0
        window = min(Double(limit), window + 1 / max(1, window))
    }

    /// True when the destination is now suspended.
    mutating func failed(reason: String, now: Int, suspendFor: Int) -> Bool {
        lastFailure = reason
        window -= 1
        if window < 1 {
            window = 1
            deadUntil = now + suspendFor
            return true
        }
        return false
    }
}
