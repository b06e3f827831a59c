import Testing

@testable import Order

/// What the Order service does about an order whose saga has not begun by its deadline. Pure: needs no servers.
struct UnstartedOrderTests {
    typealias Action = UnstartedOrders.Action

    @Test func aStartStillInTheOutboxHasNotStartedItsClock() {
        #expect(Action.next(attempts: 1, unsent: true, hasStart: true, maxAttempts: 3) == .wait)
        #expect(Action.next(attempts: 4, unsent: true, hasStart: true, maxAttempts: 3) == .wait)
    }

    @Test func theStartIsSentAgainUntilItsAttemptsAreSpentThenTheOrderIsAbandonedNeverCancelledHere() {
        #expect(Action.next(attempts: 1, unsent: false, hasStart: true, maxAttempts: 3) == .resend)
        #expect(Action.next(attempts: 2, unsent: false, hasStart: true, maxAttempts: 3) == .resend)
        #expect(Action.next(attempts: 3, unsent: false, hasStart: true, maxAttempts: 3) == .abandon)
        // An abandonment nobody answered is sent again: only the orchestrator can tell whether a saga runs.
        #expect(Action.next(attempts: 4, unsent: false, hasStart: true, maxAttempts: 3) == .abandon)
        #expect(Action.next(attempts: 1, unsent: false, hasStart: true, maxAttempts: 1) == .abandon)
    }

    @Test func anOrderWithoutAStoredStartIsAbandonedAtOnce() {
        #expect(Action.next(attempts: 1, unsent: false, hasStart: false, maxAttempts: 3) == .abandon)
    }
}
