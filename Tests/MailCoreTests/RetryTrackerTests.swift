import Testing
@testable import MailCore

@Suite("Retries of files that cannot be queued yet")
struct RetryTrackerTests {
    @Test("the wait doubles from the first delay up to the maximum")
    func backoff() {
        let tracker = RetryTracker<String>(firstDelay: 5, maximumDelay: 300)
        #expect((1...9).map { tracker.delay(afterAttempts: $0) } == [5, 10, 20, 40, 80, 160, 300, 300, 300])
    }

    @Test("a failure is news the first time and when its reason changes; the item is due again after the wait")
    func news() {
        var tracker = RetryTracker<String>(firstDelay: 5, maximumDelay: 300)
        #expect(tracker.isDue("f", now: 0))
        let first = tracker.failed("f", reason: "cleanup down", now: 100)
        #expect(first.isNews && first.entry.attempts == 1 && first.entry.nextTry == 105)
        #expect(!tracker.isDue("f", now: 104) && tracker.isDue("f", now: 105))
        let second = tracker.failed("f", reason: "cleanup down", now: 105)
        #expect(!second.isNews && second.entry.nextTry == 115)
        #expect(tracker.failed("f", reason: "451 4.3.0 later", now: 115).isNews)
        #expect(tracker.forget("f")?.attempts == 3)
        #expect(tracker.failed("f", reason: "451 4.3.0 later", now: 200).isNews)
        tracker.failed("g", reason: "x", now: 0)
        tracker.keepOnly(["g"])
        #expect(tracker.entries.keys.sorted() == ["g"])
    }
}
