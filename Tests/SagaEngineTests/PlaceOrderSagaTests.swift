import Foundation
import Messaging
import SagaEngine
import Testing

@testable import Orchestrator

/// Drives the PlaceOrder saga's state machine through every path, with no broker and no database.
struct PlaceOrderSagaTests {
    let machine = SagaMachine(PlaceOrderSaga.definition())
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func newSaga(postCode: String = "2880") -> SagaInstance<PlaceOrderData> {
        SagaInstance(
            id: "saga-1", orderId: "order-1",
            data: PlaceOrderData(
                StartPlaceOrder(
                    orderId: "order-1",
                    lines: [
                        OrderLine(productId: "cat", title: "Cat", quantity: 1, unitPriceCents: 15_000),
                        OrderLine(productId: "fish", title: "Fish", quantity: 2, unitPriceCents: 1_000),
                    ],
                    postCode: postCode,
                    card: CardSummary(last4: "4242", expiry: "12/30", cardholderName: "Kim"),
                    createdOn: "2026-11-25T00:00:00.000Z")))
    }

    /// The commands sent, as `command#attempt`.
    func sent(_ effects: [SagaEffect]) -> [String] {
        effects.compactMap {
            if case .send(_, let command, let attempt, _) = $0 { return "\(command)#\(attempt)" }
            return nil
        }
    }

    /// The status events, as `status` or `status:step`.
    func statuses(_ effects: [SagaEffect]) -> [String] {
        effects.compactMap {
            if case .status(let status, let step, _, _) = $0 {
                return step.map { "\(status.rawValue):\($0)" } ?? status.rawValue
            }
            return nil
        }
    }

    func reply(_ step: String, success: Bool = true, attempt: Int = 1, message: String? = nil) -> SagaEvent {
        .reply(
            StepReply(
                sagaId: "saga-1", step: step, attempt: attempt, success: success, errorType: success ? nil : "Refused",
                errorMessage: message))
    }

    @Test func everyStepSucceedsAndTheOrderIsCompletedWithItemsPlusShipping() throws {
        var saga = newSaga()
        var effects = machine.handle(.start, &saga, now: start)
        #expect(sent(effects) == ["reserveInventory#1"])
        effects += machine.handle(reply("reserveInventory"), &saga, now: start)
        #expect(saga.data.shippingCents == 200)
        #expect(saga.data.amountCents == 17_000 + 200)
        effects += machine.handle(reply("processPayment"), &saga, now: start)
        effects += machine.handle(reply("completeOrder"), &saga, now: start)
        #expect(sent(effects) == ["reserveInventory#1", "processPayment#1", "completeOrder#1"])
        #expect(
            statuses(effects) == [
                "started", "stepSucceeded:reserveInventory", "stepSucceeded:calculateShipping",
                "stepSucceeded:processPayment", "stepSucceeded:completeOrder", "success",
            ])
        #expect(saga.status == .completed)
        #expect(saga.timer == nil)

        // The charge carries the whole amount.
        let payment = effects.compactMap { effect -> SagaCommand<ProcessPayment>? in
            guard case .send(_, Commands.processPayment.name, _, let body) = effect else { return nil }
            return try? MessageCodec.decode(SagaCommand<ProcessPayment>.self, from: body)
        }
        #expect(payment.first?.payload.amountCents == 17_200)
        #expect(payment.first?.sagaId == "saga-1")
    }

    @Test func insufficientInventoryCancelsWithoutCompensating() {
        var saga = newSaga()
        var effects = machine.handle(.start, &saga, now: start)
        effects += machine.handle(
            reply("reserveInventory", success: false, message: FailureMessages.insufficientInventory), &saga, now: start
        )
        #expect(sent(effects) == ["reserveInventory#1", "cancelOrder#1"])
        effects += machine.handle(reply("cancelOrder"), &saga, now: start)
        #expect(saga.status == .cancelled)
        #expect(saga.failure?.message == FailureMessages.insufficientInventory)
        #expect(statuses(effects).last == "failed")
    }

    @Test func anAbandonedSagaRunsNoStepAndCancelsTheOrderWithTheReason() throws {
        var saga = newSaga()
        let failure = SagaFailure(
            step: "start", type: "SagaNotStarted", message: "Error, the order could not be started")
        var effects = machine.handle(.abandon(failure), &saga, now: start)
        #expect(sent(effects) == ["cancelOrder#1"])
        #expect(statuses(effects).isEmpty)
        let cancel = effects.compactMap { effect -> SagaCommand<CancelOrder>? in
            guard case .send(_, Commands.cancelOrder.name, _, let body) = effect else { return nil }
            return try? MessageCodec.decode(SagaCommand<CancelOrder>.self, from: body)
        }
        #expect(cancel.first?.payload == CancelOrder(errorType: "SagaNotStarted", errorMessage: failure.message))
        effects += machine.handle(reply("cancelOrder"), &saga, now: start)
        #expect(saga.status == .cancelled)
        #expect(statuses(effects) == ["failed"])
        #expect(
            effects.contains(.status(.failed, step: nil, message: failure.message, errorType: "SagaNotStarted")))
        // A start that arrives after all is ignored: the order is cancelled, nothing is reserved or charged.
        effects = machine.handle(.start, &saga, now: start)
        #expect(sent(effects).isEmpty && statuses(effects).isEmpty)
    }

    @Test func aStartedSagaIgnoresAnAbandonment() {
        var saga = newSaga()
        _ = machine.handle(.start, &saga, now: start)
        let effects = machine.handle(
            .abandon(SagaFailure(step: "start", type: "SagaNotStarted", message: "late")), &saga, now: start)
        #expect(sent(effects).isEmpty && statuses(effects).isEmpty)
        #expect(saga.status == .running && saga.failure == nil)
    }

    @Test func declinedPaymentReleasesTheInventoryThenCancels() {
        var saga = newSaga()
        var effects = machine.handle(.start, &saga, now: start)
        effects += machine.handle(reply("reserveInventory"), &saga, now: start)
        effects += machine.handle(
            reply("processPayment", success: false, message: FailureMessages.invalidCreditCard), &saga, now: start)
        effects += machine.handle(reply("releaseInventory"), &saga, now: start)
        effects += machine.handle(reply("cancelOrder"), &saga, now: start)
        #expect(sent(effects) == ["reserveInventory#1", "processPayment#1", "releaseInventory#1", "cancelOrder#1"])
        #expect(statuses(effects).suffix(3) == ["stepFailed:processPayment", "compensated:reserveInventory", "failed"])
        #expect(saga.status == .cancelled)
        #expect(saga.failure?.message == FailureMessages.invalidCreditCard)
    }

    @Test func aFailedCompleteOrderRefundsReleasesAndCancelsInReverseOrder() {
        var saga = newSaga()
        var effects = machine.handle(.start, &saga, now: start)
        effects += machine.handle(reply("reserveInventory"), &saga, now: start)
        effects += machine.handle(reply("processPayment"), &saga, now: start)
        effects += machine.handle(
            reply("completeOrder", success: false, message: "Error, order gone"), &saga, now: start)
        effects += machine.handle(reply("refundPayment"), &saga, now: start)
        effects += machine.handle(reply("releaseInventory"), &saga, now: start)
        effects += machine.handle(reply("cancelOrder"), &saga, now: start)
        #expect(
            sent(effects) == [
                "reserveInventory#1", "processPayment#1", "completeOrder#1", "refundPayment#1", "releaseInventory#1",
                "cancelOrder#1",
            ])
        #expect(saga.status == .cancelled)
        #expect(statuses(effects).last == "failed")
    }

    @Test func aStepThatNeverAnswersIsRetriedThenFailedAndItselfCompensated() {
        var saga = newSaga()
        var now = start
        var effects = machine.handle(.start, &saga, now: now)
        // Three attempts, each with its deadline; pauses between them.
        for _ in 0..<2 {
            now = saga.timer!.at
            effects += machine.handle(.timerFired, &saga, now: now)  // deadline
            #expect(saga.timer?.kind == .retry)
            now = saga.timer!.at
            effects += machine.handle(.timerFired, &saga, now: now)  // retry pause over: resend
        }
        #expect(sent(effects) == ["reserveInventory#1", "reserveInventory#2", "reserveInventory#3"])
        now = saga.timer!.at
        effects += machine.handle(.timerFired, &saga, now: now)
        // The outcome is unknown, so the step's own compensation runs.
        #expect(sent(effects).last == "releaseInventory#1")
        #expect(saga.failure?.type == "Timeout")
        // The late reply of the first attempt no longer counts.
        let late = machine.handle(reply("reserveInventory", attempt: 1), &saga, now: now)
        #expect(sent(late).isEmpty)
        #expect(
            late.contains { if case .history(let entry) = $0 { return entry.kind == .ignored } else { return false } })
        effects += machine.handle(reply("releaseInventory"), &saga, now: now)
        effects += machine.handle(reply("cancelOrder"), &saga, now: now)
        #expect(saga.status == .cancelled)
    }

    @Test func aLateReplyOfAnEarlierAttemptIsAcceptedWhileTheStepIsStillCurrent() {
        var saga = newSaga()
        _ = machine.handle(.start, &saga, now: start)
        _ = machine.handle(.timerFired, &saga, now: saga.timer!.at)
        _ = machine.handle(.timerFired, &saga, now: saga.timer!.at)
        #expect(saga.attempt == 2)
        let effects = machine.handle(reply("reserveInventory", attempt: 1), &saga, now: start)
        #expect(sent(effects) == ["processPayment#1"])
        // The second attempt's reply then arrives and is ignored.
        let duplicate = machine.handle(reply("reserveInventory", attempt: 2), &saga, now: start)
        #expect(sent(duplicate).isEmpty)
    }

    @Test func aCompensationThatKeepsFailingParksTheSagaUntilAnOperatorRetries() {
        var saga = newSaga()
        var now = start
        _ = machine.handle(.start, &saga, now: now)
        _ = machine.handle(reply("reserveInventory"), &saga, now: now)
        var effects = machine.handle(
            reply("processPayment", success: false, message: FailureMessages.invalidCreditCard), &saga, now: now)
        var attempts = 1
        while saga.status != .needsAttention {
            effects += machine.handle(
                reply("releaseInventory", success: false, attempt: attempts, message: "database down"), &saga, now: now)
            if let timer = saga.timer, timer.kind == .retry {
                now = timer.at
                effects += machine.handle(.timerFired, &saga, now: now)
                attempts += 1
            }
            #expect(attempts <= 8)
        }
        #expect(attempts == 8)
        #expect(saga.timer == nil)
        #expect(statuses(effects).last == "needsAttention:releaseInventory")
        // Nothing happens on its own any more.
        #expect(sent(machine.handle(.timerFired, &saga, now: now.addingTimeInterval(3600))).isEmpty)

        let retried = machine.handle(.operatorRetry, &saga, now: now)
        #expect(sent(retried) == ["releaseInventory#1"])
        #expect(saga.status == .compensating)
        var rest = machine.handle(reply("releaseInventory"), &saga, now: now)
        rest += machine.handle(reply("cancelOrder"), &saga, now: now)
        #expect(saga.status == .cancelled)
        #expect(statuses(rest).last == "failed")
    }

    @Test func repliesForAnotherCallAndRepeatedStartsChangeNothing() {
        var saga = newSaga()
        _ = machine.handle(.start, &saga, now: start)
        let before = saga.stepIndex
        #expect(sent(machine.handle(reply("processPayment"), &saga, now: start)).isEmpty)
        #expect(sent(machine.handle(.start, &saga, now: start)).isEmpty)
        #expect(saga.stepIndex == before)
        #expect(saga.attempt == 1)
    }

    @Test func operatorRetryOnARunningSagaIsRefused() {
        var saga = newSaga()
        _ = machine.handle(.start, &saga, now: start)
        #expect(sent(machine.handle(.operatorRetry, &saga, now: start)).isEmpty)
        #expect(saga.status == .running)
    }

    @Test func aSagaParkedInItsForwardStepsRunsOnForwardWhenRetried() {
        // As `SagaStore.park` leaves a saga whose timer could not fire: parked, no timer, still in its first step.
        var saga = newSaga()
        _ = machine.handle(.start, &saga, now: start)
        saga.status = .needsAttention
        saga.timer = nil
        var effects = machine.handle(.operatorRetry, &saga, now: start)
        #expect(sent(effects) == ["reserveInventory#1"])
        #expect(saga.status == .running)
        effects += machine.handle(reply("reserveInventory"), &saga, now: start)
        #expect(sent(effects).last == "processPayment#1")
    }

    @Test func theSagaSurvivesAnEncodeDecodeRoundTripMidway() throws {
        var saga = newSaga()
        _ = machine.handle(.start, &saga, now: start)
        _ = machine.handle(reply("reserveInventory"), &saga, now: start)
        var restored = try SagaStore.decode(try SagaStore.encode(saga))
        #expect(restored.timer == saga.timer)
        let effects = machine.handle(reply("processPayment"), &restored, now: start)
        #expect(sent(effects) == ["completeOrder#1"])
    }

    @Test(arguments: [("2880", 200), ("7", 550), ("12345", 450), ("06091", 250)])
    func shippingIsHalfTheLastDigitPlusTwo(postCode: String, cents: Int) throws {
        #expect(try Shipping.costCents(postCode: postCode) == cents)
    }

    @Test func aPostCodeWithoutAFinalDigitFailsTheShippingStep() {
        var saga = newSaga(postCode: "SW1A 1AA")
        var effects = machine.handle(.start, &saga, now: start)
        effects += machine.handle(reply("reserveInventory"), &saga, now: start)
        #expect(sent(effects).last == "releaseInventory#1")
        #expect(saga.failure?.step == "calculateShipping")
    }
}
