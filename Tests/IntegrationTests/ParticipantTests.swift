import AMQP
import Foundation
import Messaging
import Persistence
import PostgresNIO
import ServiceKit
import Testing

@testable import Inventory
@testable import Order
@testable import Payment

/// Each participant's handlers against its real database: every command applied twice (a redelivery, or a retry
/// by the orchestrator) has one effect, and compensations are safe for steps that never ran.
@Suite(.serialized, .enabled(if: TestEnvironment.available, "needs the PostgreSQL that scripts/test starts"))
struct ParticipantTests {
    let logger = TestEnvironment.logger
    static let cat = SeedCatalogue.products[0]
    static let fish = SeedCatalogue.products[3]

    func command<Payload>(_ step: String, _ payload: Payload, saga: String, order: String, attempt: Int = 1)
        -> SagaCommand<Payload>
    {
        SagaCommand(sagaId: saga, orderId: order, step: step, attempt: attempt, payload: payload)
    }

    func newId() -> String { UUID().uuidString.lowercased() }

    // MARK: Inventory

    func inventory<Result: Sendable>(_ body: @Sendable (PostgresClient, StockStore) async throws -> Result) async throws
        -> Result
    {
        try await TestEnvironment.withDatabase(
            TestEnvironment.database("inventory", passwordVariable: "PETS_PW_INVENTORY"),
            migrations: InventorySchema.migrations
        ) { client in
            let store = StockStore(logger: logger)
            try await store.seed(client, initialStock: 1_000)
            return try await body(client, store)
        }
    }

    func stock(_ client: PostgresClient, _ productId: String) async throws -> Int {
        for try await stock in try await client.query("SELECT stock FROM products WHERE id = \(productId)").decode(
            Int.self)
        {
            return stock
        }
        throw ConfigurationError("no product \(productId)")
    }

    @Test func aReservationAppliedTwiceTakesStockOnceAndAReleaseTwiceReturnsItOnce() async throws {
        try await inventory { client, store in
            let (saga, order) = (newId(), newId())
            let lines = [
                OrderLine(productId: Self.cat.id, title: "Cat", quantity: 2, unitPriceCents: 15_000),
                OrderLine(productId: Self.fish.id, title: "Fish", quantity: 3, unitPriceCents: 1_000),
            ]
            let cats = try await stock(client, Self.cat.id)
            let fish = try await stock(client, Self.fish.id)
            for attempt in 1...2 {
                let outcome = try await client.withTransaction(logger: logger) {
                    try await store.reserveInventory(
                        command(
                            Commands.reserveInventory.name, ReserveInventory(lines: lines), saga: saga, order: order,
                            attempt: attempt), $0, logger)
                }
                #expect(outcome.success)
            }
            #expect(try await stock(client, Self.cat.id) == cats - 2)
            #expect(try await stock(client, Self.fish.id) == fish - 3)
            for _ in 1...2 {
                let outcome = try await client.withTransaction(logger: logger) {
                    try await store.releaseInventory(
                        command(Commands.releaseInventory.name, ReleaseInventory(), saga: saga, order: order), $0,
                        logger)
                }
                #expect(outcome.success)
            }
            #expect(try await stock(client, Self.cat.id) == cats)
            #expect(try await stock(client, Self.fish.id) == fish)
        }
    }

    @Test func aReleaseBeforeItsReservationMakesTheLateReservationFail() async throws {
        try await inventory { client, store in
            let (saga, order) = (newId(), newId())
            let cats = try await stock(client, Self.cat.id)
            let released = try await client.withTransaction(logger: logger) {
                try await store.releaseInventory(
                    command(Commands.releaseInventory.name, ReleaseInventory(), saga: saga, order: order), $0, logger)
            }
            #expect(released.success)
            let late = try await client.withTransaction(logger: logger) {
                try await store.reserveInventory(
                    command(
                        Commands.reserveInventory.name,
                        ReserveInventory(lines: [
                            .init(productId: Self.cat.id, title: "Cat", quantity: 1, unitPriceCents: 15_000)
                        ]), saga: saga, order: order),
                    $0, logger)
            }
            #expect(!late.success)
            #expect(try await stock(client, Self.cat.id) == cats)
        }
    }

    @Test(arguments: [11, 1_001])
    func tooManyOfOnePetIsInsufficientInventoryAndTakesNothing(quantity: Int) async throws {
        try await inventory { client, store in
            let cats = try await stock(client, Self.cat.id)
            let outcome = try await client.withTransaction(logger: logger) {
                try await store.reserveInventory(
                    command(
                        Commands.reserveInventory.name,
                        ReserveInventory(lines: [
                            .init(productId: Self.cat.id, title: "Cat", quantity: quantity, unitPriceCents: 15_000)
                        ]), saga: newId(), order: newId()),
                    $0, logger)
            }
            #expect(!outcome.success)
            #expect(outcome.errorMessage == FailureMessages.insufficientInventory)
            #expect(try await stock(client, Self.cat.id) == cats)
        }
    }

    @Test func concurrentReservationsAndReleasesOnTheSameProductsNeitherDeadlockNorLeak() async throws {
        try await inventory { client, store in
            let cats = try await stock(client, Self.cat.id)
            let fish = try await stock(client, Self.fish.id)
            // Lines in opposite product orders would deadlock without the fixed lock order.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        let (saga, order) = (newId(), newId())
                        var lines = [
                            OrderLine(productId: Self.cat.id, title: "Cat", quantity: 1, unitPriceCents: 15_000),
                            OrderLine(productId: Self.fish.id, title: "Fish", quantity: 1, unitPriceCents: 1_000),
                        ]
                        if index.isMultiple(of: 2) { lines.reverse() }
                        _ = try await client.withTransaction(logger: logger) {
                            try await store.reserveInventory(
                                command(
                                    Commands.reserveInventory.name, ReserveInventory(lines: lines), saga: saga,
                                    order: order),
                                $0, logger)
                        }
                        if index.isMultiple(of: 3) {
                            _ = try await client.withTransaction(logger: logger) {
                                try await store.releaseInventory(
                                    command(
                                        Commands.releaseInventory.name, ReleaseInventory(), saga: saga, order: order),
                                    $0, logger)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let kept = (0..<40).filter { !$0.isMultiple(of: 3) }.count
            #expect(try await stock(client, Self.cat.id) == cats - kept)
            #expect(try await stock(client, Self.fish.id) == fish - kept)
        }
    }

    // MARK: Payment

    func payments<Result: Sendable>(_ body: @Sendable (PostgresClient, PaymentLedger) async throws -> Result)
        async throws -> Result
    {
        try await TestEnvironment.withDatabase(
            TestEnvironment.database("payments", passwordVariable: "PETS_PW_PAYMENTS"),
            migrations: PaymentSchema.migrations
        ) { client in
            try await body(client, PaymentLedger(logger: logger))
        }
    }

    func ledger(_ client: PostgresClient, _ saga: String) async throws -> [String] {
        var kinds: [String] = []
        for try await (kind, amount) in try await client.query(
            "SELECT kind, amount_cents FROM ledger WHERE saga_id = \(saga) ORDER BY id"
        ).decode((String, Int).self) {
            kinds.append("\(kind) \(amount)")
        }
        return kinds
    }

    let goodCard = CardSummary(last4: "4242", expiry: "12/99", cardholderName: "Kim")

    @Test func aChargeAppliedTwiceChargesOnceAndARefundTwiceRefundsOnce() async throws {
        try await payments { client, ledger in
            let (saga, order) = (newId(), newId())
            for attempt in 1...2 {
                let outcome = try await client.withTransaction(logger: logger) {
                    try await ledger.processPayment(
                        command(
                            Commands.processPayment.name, ProcessPayment(amountCents: 17_200, card: goodCard),
                            saga: saga,
                            order: order, attempt: attempt), $0, logger)
                }
                #expect(outcome.success)
            }
            #expect(try await self.ledger(client, saga) == ["charge 17200"])
            for _ in 1...2 {
                let outcome = try await client.withTransaction(logger: logger) {
                    try await ledger.refundPayment(
                        command(Commands.refundPayment.name, RefundPayment(), saga: saga, order: order), $0, logger)
                }
                #expect(outcome.success)
            }
            #expect(try await self.ledger(client, saga) == ["charge 17200", "refund 17200"])
        }
    }

    @Test func aRefundBeforeItsChargeMakesTheLateChargeFail() async throws {
        try await payments { client, ledger in
            let (saga, order) = (newId(), newId())
            let refunded = try await client.withTransaction(logger: logger) {
                try await ledger.refundPayment(
                    command(Commands.refundPayment.name, RefundPayment(), saga: saga, order: order), $0, logger)
            }
            #expect(refunded.success)
            let late = try await client.withTransaction(logger: logger) {
                try await ledger.processPayment(
                    command(
                        Commands.processPayment.name, ProcessPayment(amountCents: 100, card: goodCard), saga: saga,
                        order: order), $0, logger)
            }
            #expect(!late.success)
            #expect(try await self.ledger(client, saga).isEmpty)
        }
    }

    @Test(arguments: ["12/19", "13/30", "00/30", "1/30", "ab/cd"])
    func anExpiredOrImpossibleCardIsDeclinedWithTheSeedsMessage(expiry: String) async throws {
        try await payments { client, ledger in
            let saga = newId()
            let outcome = try await client.withTransaction(logger: logger) {
                try await ledger.processPayment(
                    command(
                        Commands.processPayment.name,
                        ProcessPayment(
                            amountCents: 100, card: CardSummary(last4: "4242", expiry: expiry, cardholderName: "Kim")),
                        saga: saga, order: newId()),
                    $0, logger)
            }
            #expect(!outcome.success)
            #expect(outcome.errorMessage == FailureMessages.invalidCreditCard)
            #expect(try await self.ledger(client, saga).isEmpty)
        }
    }

    // MARK: Order

    @Test func completingTwiceIsOneCompletionAndACancelledOrderCannotComplete() async throws {
        try await TestEnvironment.withDatabase(
            TestEnvironment.database("orders", passwordVariable: "PETS_PW_ORDERS"), migrations: OrderSchema.migrations
        ) { client in
            let repository = OrderRepository(client: client, logger: logger)
            try await repository.seedCatalogue()
            let order = ValidOrder(
                lines: [.init(productId: Self.cat.id, title: "Cat", quantity: 1, unitPriceCents: 15_000)],
                address: "1 Main St", city: "Seoul", postCode: "2880", card: goodCard)
            let placed = try await repository.place(
                order, idempotencyKey: nil, requestHash: "h", traceparent: TraceContext.newTraceparent())
            let handlers = OrderHandlers(logger: logger)
            for _ in 1...2 {
                let outcome = try await client.withTransaction(logger: logger) {
                    try await handlers.completeOrder(
                        command(
                            Commands.completeOrder.name, CompleteOrder(shippingCents: 200, amountCents: 15_200),
                            saga: newId(), order: placed.orderId), $0, logger)
                }
                #expect(outcome.success)
            }
            #expect(try await repository.order(placed.orderId)?.orderStatus == .completed)
            #expect(try await repository.order(placed.orderId)?.paymentAmount == 152)

            // A saga whose completion reply was lost compensates and cancels: the order ends cancelled.
            _ = try await client.withTransaction(logger: logger) {
                try await handlers.cancelOrder(
                    command(
                        Commands.cancelOrder.name,
                        CancelOrder(errorType: "Timeout", errorMessage: "Error, completeOrder did not answer in time"),
                        saga: newId(), order: placed.orderId), $0, logger)
            }
            let cancelled = try #require(try await repository.order(placed.orderId))
            #expect(cancelled.orderStatus == .cancelled)
            #expect(cancelled.errorMessage == "Error, completeOrder did not answer in time")
            let again = try await client.withTransaction(logger: logger) {
                try await handlers.completeOrder(
                    command(
                        Commands.completeOrder.name, CompleteOrder(shippingCents: 200, amountCents: 15_200),
                        saga: newId(),
                        order: placed.orderId), $0, logger)
            }
            #expect(!again.success)
        }
    }
}
