/// Which items are waiting for another try, when each is due, and whether a
/// failure is news worth a log line: pickup keeps one per maildrop file it
/// could not queue, so that a file that keeps failing is tried less and less
/// often (doubling from `firstDelay` up to `maximumDelay`) and logged once
/// per reason, not at every scan. Pure: the caller passes the clock.
public struct RetryTracker<Key: Hashable & Sendable>: Sendable {
    public struct Entry: Equatable, Sendable {
        /// Failures in a row.
        public var attempts: Int
        /// When the item may be tried again (the caller's clock, seconds).
        public var nextTry: Double
        /// The reason last logged.
        public var reason: String
    }

    public let firstDelay: Double
    public let maximumDelay: Double
    public private(set) var entries: [Key: Entry] = [:]

    public init(firstDelay: Double, maximumDelay: Double) {
        self.firstDelay = firstDelay
        self.maximumDelay = max(firstDelay, maximumDelay)
    }

    /// The wait after `attempts` failures in a row: first, twice that, ...
    public func delay(afterAttempts attempts: Int) -> Double {
        var delay = firstDelay
        var n = 1
        while n < attempts && delay < maximumDelay {
            delay *= 2
            n += 1
        }
        return min(delay, maximumDelay)
    }

    /// Whether `key` may be tried at `now`: never failed, or its wait is over.
    public func isDue(_ key: Key, now: Double) -> Bool {
        guard let entry = entries[key] else { return true }
        return now >= entry.nextTry
    }

    /// Records a failure. Returns the entry and whether it is news: the
    /// first failure, or a reason other than the one last logged.
    @discardableResult
    public mutating func failed(_ key: Key, reason: String, now: Double) -> (entry: Entry, isNews: Bool) {
        var entry = entries[key] ?? Entry(attempts: 0, nextTry: now, reason: "")
        let isNews = entry.attempts == 0 || entry.reason != reason
        entry.attempts += 1
        entry.nextTry = now + delay(afterAttempts: entry.attempts)
        entry.reason = reason
        entries[key] = entry
        return (entry, isNews)
    }

    /// Forgets `key` (it succeeded, or is gone); returns what was known.
    @discardableResult
    public mutating func forget(_ key: Key) -> Entry? {
        entries.removeValue(forKey: key)
    }

    /// Forgets every key not in `present` (files that went away meanwhile).
    public mutating func keepOnly(_ present: Set<Key>) {
        entries = entries.filter { present.contains($0.key) }
    }
}
