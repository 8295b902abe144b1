import MailCore
import Testing
@testable import QueueFormat

@Suite("Who a report is for")
struct DeliveryReportTests {
    typealias Event = DeliveryReport.Event

    static func envelope(sender: String = "jun@example.jp") -> QueueEnvelope {
        var envelope = QueueEnvelope(arrivalSeconds: 1000, sender: sender, recipients: [
            QueueRecipient(address: "plain@example.jp"),
            QueueRecipient(address: "never@example.jp", notify: DSNNotify.never.rawValue),
            QueueRecipient(address: "success@example.jp", notify: DSNNotify.success.rawValue, orcpt: "rfc822;S@example.jp"),
            QueueRecipient(address: "failure@example.jp", notify: DSNNotify.failure.rawValue),
            QueueRecipient(address: "member@example.jp", originalRecipient: "team@example.jp",
                           notify: DSNNotify([.success, .delay]).rawValue),
        ])
        envelope[info: .dsnEnvid] = "E1"
        envelope[info: .dsnRet] = "HDRS"
        return envelope
    }

    static func notification(_ kind: DeliveryStatusNotification.Kind, _ events: [Event],
                             envelope: QueueEnvelope = envelope()) -> DeliveryStatusNotification? {
        DeliveryReport.notification(kind, events: events, envelope: envelope,
                                    queueID: QueueID(seconds: 1000, microseconds: 0, inode: 7), hostname: "mail.example.jp",
                                    now: 2000, formatDate: { "T\($0)" }, messageID: "<m@x>", boundary: "b")
    }

    static func bounced(_ index: Int) -> Event {
        Event(index: index, outcome: .bounced(EnhancedStatusCode(5, 1, 1), "unknown user"), time: 1500)
    }

    @Test("failures: NOTIFY absent or FAILURE, never NEVER or SUCCESS alone; in queue order")
    func failures() throws {
        let report = try #require(Self.notification(.failure, [4, 3, 2, 1, 0].map(Self.bounced)))
        #expect(report.recipients.map(\.finalRecipient) == ["plain@example.jp", "failure@example.jp"])
        #expect(report.recipients.allSatisfy { $0.action == .failed && $0.lastAttemptDate == "T1500" })
        #expect(report.reportRecipient == "jun@example.jp" && !report.isPostmasterCopy)
        #expect(report.envelopeID == "E1" && report.returnContent == .headers)
        #expect(report.arrivalDate == "T1000" && report.date == "T2000")
        #expect(Self.notification(.failure, [Self.bounced(1), Self.bounced(2)]) == nil)
    }

    @Test("successes: SUCCESS only, with ORCPT and the address it was expanded from")
    func successes() throws {
        let delivered = [0, 2, 4].map {
            Event(index: $0, outcome: .delivered(EnhancedStatusCode(2, 0, 0), "delivered to mailbox"),
                  deliveredAction: $0 == 4 ? .expanded : .delivered)
        }
        let report = try #require(Self.notification(.success, delivered))
        #expect(report.recipients.map(\.finalRecipient) == ["success@example.jp", "member@example.jp"])
        #expect(report.recipients[0].originalRecipient == OriginalRecipient(addressType: "rfc822", address: "S@example.jp"))
        #expect(report.recipients[0].action == .delivered && report.recipients[1].action == .expanded)
        #expect(report.recipients[1].expandedFrom == "team@example.jp")
        #expect(report.recipients[0].expandedFrom == nil)
    }

    @Test("delays: NOTIFY absent or DELAY; events of another kind are ignored")
    func delays() throws {
        let events = [0, 1, 2, 3, 4].map { Event(index: $0, outcome: .deferred(EnhancedStatusCode(4, 4, 1), "timeout")) }
        let report = try #require(Self.notification(.delay, events + [Self.bounced(0)]))
        #expect(report.recipients.map(\.finalRecipient) == ["plain@example.jp", "member@example.jp"])
        #expect(report.recipients.allSatisfy { $0.action == .delayed })
    }

    @Test("the null sender: failures to the postmaster, nothing else at all")
    func nullSender() throws {
        let envelope = Self.envelope(sender: "")
        let report = try #require(Self.notification(.failure, [Self.bounced(0)], envelope: envelope))
        #expect(report.reportRecipient == "postmaster@mail.example.jp" && report.isPostmasterCopy)
        let delivered = Event(index: 2, outcome: .delivered(EnhancedStatusCode(2, 0, 0), "ok"))
        #expect(Self.notification(.success, [delivered], envelope: envelope) == nil)
        #expect(Self.notification(.delay, [Event(index: 0, outcome: .deferred(EnhancedStatusCode(4, 0, 0), "x"))],
                                  envelope: envelope) == nil)
    }

    @Test("an index outside the file is ignored")
    func badIndex() {
        #expect(Self.notification(.failure, [Self.bounced(99)]) == nil)
    }
}
