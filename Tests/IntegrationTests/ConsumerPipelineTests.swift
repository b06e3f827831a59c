import AMQP
import Foundation
import Messaging
import Persistence
import PostgresNIO
import ServiceKit
import Testing

@testable import Inventory

/// The whole consuming path with the real broker and database: inbox, handler, outbox, relay, ack.
@Suite(.serialized, .enabled(if: TestEnvironment.available, "needs the servers that scripts/test starts"))
struct ConsumerPipelineTests {
    let logger = TestEnvironment.logger

    @Test func aDuplicatedMessageIsAppliedOnceAndAMalformedOneIsDeadLetteredWhileTheConsumerGoesOn() async throws {
        let commands = TestEnvironment.uniqueName("test.inventory.commands")
        let replies = TestEnvironment.uniqueName("test.replies")
        let deadLetters = TestEnvironment.uniqueName("test.dead-letters")
        let topology =
            PetsTopology.durable
            + AMQPTopology(
                exchanges: [.init(deadLetters, kind: .fanout)],
                queues: [
                    .init(commands, kind: .quorum(deliveryLimit: 5), deadLetterExchange: deadLetters),
                    .init(replies, kind: .quorum(deliveryLimit: 5)),
                    .init(deadLetters, kind: .quorum(deliveryLimit: 5)),
                ],
                bindings: [.init(queue: deadLetters, exchange: deadLetters)])
        try await TestEnvironment.withDatabase(
            TestEnvironment.database("inventory", passwordVariable: "PETS_PW_INVENTORY"),
            migrations: InventorySchema.migrations
        ) { client in
            let store = StockStore(logger: logger)
            try await store.seed(client, initialStock: 1_000)
            var router = CommandRouter()
            router.on(Commands.reserveInventory, handle: store.reserveInventory)

            let publisher = AMQPPublisher(configuration: TestEnvironment.amqp, topology: topology, logger: logger)
            let relay = OutboxRelay(client: client, publisher: publisher, logger: logger)
            let consumer = AMQPConsumer(
                configuration: TestEnvironment.amqp, topology: topology, queue: commands, logger: logger)
            let gate = ReadinessGate()
            await gate.open()
            let service = MessageConsumerService(
                queue: commands, consumer: consumer, client: client, relay: relay, schemaReady: gate, logger: logger,
                handler: router.handler)
            let running = Task { try await service.run() }
            let relaying = Task { try await relay.run() }
            defer {
                running.cancel()
                relaying.cancel()
            }

            let product = SeedCatalogue.products[1]  // Dog
            var before = 0
            for try await stock in try await client.query("SELECT stock FROM products WHERE id = \(product.id)").decode(
                Int.self)
            { before = stock }

            let saga = UUID().uuidString.lowercased()
            let body = try MessageCodec.encode(
                SagaCommand(
                    sagaId: saga, orderId: UUID().uuidString.lowercased(), step: Commands.reserveInventory.name,
                    attempt: 1,
                    payload: ReserveInventory(lines: [
                        .init(
                            productId: product.id, title: product.title, quantity: 3,
                            unitPriceCents: product.unitPriceCents)
                    ])))
            let command = OutgoingMessage(
                routingKey: commands,
                message: AMQPMessage(
                    messageID: "dup-\(saga)", correlationID: saga, type: Commands.reserveInventory.name,
                    replyTo: replies,
                    body: body))
            var retried = command
            retried.message.messageID = "retry-\(saga)"
            let garbage = OutgoingMessage(
                routingKey: commands,
                message: AMQPMessage(
                    messageID: "garbage-\(saga)", type: Commands.reserveInventory.name, replyTo: replies,
                    body: Array("not json".utf8)))
            // The same message twice (a redelivery), a garbage message, then the orchestrator's retry (a new id).
            try await publisher.publish([command, command, garbage, retried])

            let replyConsumer = AMQPConsumer(
                configuration: TestEnvironment.amqp, topology: topology, queue: replies, logger: logger)
            defer { replyConsumer.shutdown() }
            let collector = DeliveryCollector(replyConsumer)
            let received = await collector.waitFor(2, seconds: 15)
            // One reply per distinct message id that decodes; the duplicate was dropped by the inbox.
            #expect(received.count == 2)
            let decoded = try received.map { try MessageCodec.decode(StepReply.self, from: $0.message.body) }
            #expect(decoded.allSatisfy { $0.success && $0.sagaId == saga })
            received.forEach { $0.settle(.ack) }
            try await Task.sleep(for: .milliseconds(300))
            #expect(await collector.waitFor(3, seconds: 1).count == 2)

            let deadConsumer = AMQPConsumer(
                configuration: TestEnvironment.amqp, topology: topology, queue: deadLetters, logger: logger)
            defer { deadConsumer.shutdown() }
            let dead = await DeliveryCollector(deadConsumer).waitFor(1, seconds: 10)
            #expect(dead.map(\.message.messageID) == ["garbage-\(saga)"])
            dead.forEach { $0.settle(.ack) }

            var after = 0
            for try await stock in try await client.query("SELECT stock FROM products WHERE id = \(product.id)").decode(
                Int.self)
            { after = stock }
            #expect(after == before - 3)
            var inbox = 0
            for try await count in try await client.query(
                "SELECT count(*)::int FROM inbox WHERE message_id LIKE \("%" + saga)"
            ).decode(Int.self) { inbox = count }
            #expect(inbox == 2)

            // The same message once more, well after its first copy committed: alone in its batch, so its claim
            // rides in the transaction's last statement, finds the id there and rolls the repeat back.
            try await publisher.publish([command])
            try await Task.sleep(for: .seconds(1))
            #expect(await collector.waitFor(3, seconds: 2).count == 2)
            var afterRepeat = 0
            for try await stock in try await client.query("SELECT stock FROM products WHERE id = \(product.id)").decode(
                Int.self)
            { afterRepeat = stock }
            #expect(afterRepeat == before - 3)
            var outboxLeft = 0
            for try await count in try await client.query(
                "SELECT count(*)::int FROM outbox WHERE correlation_id = \(saga)"
            ).decode(Int.self) { outboxLeft = count }
            #expect(outboxLeft == 0)
        }
    }
}
