import NIOConcurrencyHelpers

/// Per-client counters in the spirit of Postfix's anvil: connections open
/// now, and connections, messages and recipients in the last minute, per
/// client address, for the whole smtpd process. The local host itself
/// (127.0.0.1, ::1: its own programs) is never limited, though it counts
/// toward the session cap.
final class ClientLimits: Sendable {
    struct Limits: Sendable {
        /// Sessions at once in this smtpd, over all clients.
        var sessions: Int
        /// Sessions at once from one address.
        var connectionsPerClient: Int
        /// Per minute from one address; 0 means no limit.
        var connectionRate: Int
        var messageRate: Int
        var recipientRate: Int
    }

    enum Refusal: Equatable, Sendable {
        case busy
        case tooManyConnections
        case connectionRate
    }

    struct Counters {
        var open = 0
        var connections: [Int] = []
        var messages: [Int] = []
        var recipients: [Int] = []

        var isIdle: Bool { open == 0 && connections.isEmpty && messages.isEmpty && recipients.isEmpty }

        mutating func prune(_ now: Int) {
            connections.removeAll { now - $0 >= ClientLimits.window }
            messages.removeAll { now - $0 >= ClientLimits.window }
            recipients.removeAll { now - $0 >= ClientLimits.window }
        }
    }

    static let window = 60
    let limits: Limits
    let state = NIOLockedValueBox((total: 0, clients: [String: Counters]()))

    init(limits: Limits) {
        self.limits = limits
    }

    static func isLoopback(_ address: String) -> Bool {
        address == "127.0.0.1" || address == "::1" || address == "::ffff:127.0.0.1"
    }

    /// A new session from `address`: admitted (and counted) or refused.
    func admit(_ address: String, now: Int) -> Refusal? {
        state.withLockedValue { state in
            guard state.total < limits.sessions else { return .busy }
            if !Self.isLoopback(address) {
                var counters = state.clients[address] ?? Counters()
                counters.prune(now)
                if counters.open >= limits.connectionsPerClient {
                    state.clients[address] = counters
                    return .tooManyConnections
                }
                if limits.connectionRate > 0 && counters.connections.count >= limits.connectionRate {
                    state.clients[address] = counters
                    return .connectionRate
                }
                counters.open += 1
                counters.connections.append(now)
                state.clients[address] = counters
            }
            state.total += 1
            return nil
        }
    }

    /// An admitted session ended.
    func release(_ address: String, now: Int) {
        state.withLockedValue { state in
            state.total -= 1
            guard !Self.isLoopback(address), var counters = state.clients[address] else { return }
            counters.open -= 1
            counters.prune(now)
            state.clients[address] = counters.isIdle ? nil : counters
        }
    }

    /// Counts one more recipient (and, for the first of a message, one more
    /// message) unless that would pass a rate; the refusal's text otherwise.
    func allowRecipient(_ address: String, firstOfMessage: Bool, now: Int) -> String? {
        guard !Self.isLoopback(address), limits.messageRate > 0 || limits.recipientRate > 0 else { return nil }
        return state.withLockedValue { state in
            var counters = state.clients[address] ?? Counters()
            counters.prune(now)
            defer { state.clients[address] = counters }
            if firstOfMessage && limits.messageRate > 0 && counters.messages.count >= limits.messageRate {
                return "too much mail from \(address)"
            }
            if limits.recipientRate > 0 && counters.recipients.count >= limits.recipientRate {
                return "too many recipients from \(address)"
            }
            if firstOfMessage { counters.messages.append(now) }
            counters.recipients.append(now)
            return nil
        }
    }
}
