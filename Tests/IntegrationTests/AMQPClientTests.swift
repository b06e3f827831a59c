import AMQP
import Foundation
import Logging
import Testing

/// The AMQP client against the real broker: confirms, properties, acks, redelivery, dead-lettering, reconnects.
@Suite(.serialized, .enabled(if: TestEnvironment.available, "needs the RabbitMQ that scripts/test starts"))
struct AMQPClientTests {
    let logger = TestEnvironment.logger

    func topology(_ queue: String, deadLetter: String? = nil) -> AMQPTopology {
        var topology = AMQPTopology(queues: [
            .init(queue, kind: .quorum(deliveryLimit: 5), deadLetterExchange: deadLetter)
        ])
        if let deadLetter {
            topology =
                topology
                + AMQPTopology(
                    exchanges: [.init(deadLetter, kind: .fanout)],
                    queues: [.init("\(deadLetter).queue", kind: .quorum(deliveryLimit: 5))],
                    bindings: [.init(queue: "\(deadLetter).queue", exchange: deadLetter)])
        }
        return topology
    }

    func message(_ index: Int, to queue: String) -> OutgoingMessage {
        OutgoingMessage(
            routingKey: queue,
            message: AMQPMessage(
                messageID: "m-\(index)", correlationID: "saga-\(index)", type: "test.message", replyTo: "replies",
                headers: ["traceparent": "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"],
                body: Array("{\"n\":\(index)}".utf8)))
    }

    /// Publishes until the broker confirms, for up to 30 s: a broker that has just started may nack a quorum queue's
    /// first messages until its leader is elected, and the caller (the outbox relay) simply tries again.
    func publishEventually(_ publisher: AMQPPublisher, _ message: OutgoingMessage) async throws -> Bool {
        for _ in 0..<60 {
            do {
                try await publisher.publish(message)
                return true
            } catch {
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        return false
    }

    @Test func confirmedMessagesArriveInOrderWithEveryProperty() async throws {
        let queue = TestEnvironment.uniqueName("test.confirm")
        let publisher = AMQPPublisher(configuration: TestEnvironment.amqp, topology: topology(queue), logger: logger)
        defer { publisher.shutdown() }
        // Concurrent callers share confirm round trips; each returns only once its messages are confirmed.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for batch in 0..<10 {
                group.addTask {
                    try await publisher.publish((0..<50).map { message(batch * 50 + $0, to: queue) })
                }
            }
            try await group.waitForAll()
        }
        #expect(publisher.isConnected)

        let consumer = AMQPConsumer(
            configuration: TestEnvironment.amqp, topology: topology(queue), queue: queue, prefetch: 500, logger: logger)
        defer { consumer.shutdown() }
        let collector = DeliveryCollector(consumer)
        let deliveries = await collector.waitFor(500)
        #expect(deliveries.count == 500)
        #expect(Set(deliveries.map(\.message.messageID)).count == 500)
        let first = try #require(deliveries.first { $0.message.messageID == "m-7" })
        #expect(first.message.correlationID == "saga-7")
        #expect(first.message.type == "test.message")
        #expect(first.message.replyTo == "replies")
        #expect(first.message.persistent)
        #expect(first.message.headers["traceparent"] == "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")
        #expect(String(decoding: first.message.body, as: UTF8.self) == "{\"n\":7}")
        #expect(first.redelivered == false)
        deliveries.forEach { $0.settle(.ack) }
    }

    @Test func publishingToAMissingExchangeFailsInsteadOfLosingTheMessage() async throws {
        let publisher = AMQPPublisher(configuration: TestEnvironment.amqp, topology: AMQPTopology(), logger: logger)
        defer { publisher.shutdown() }
        await #expect(throws: AMQPError.self) {
            try await publisher.publish(
                OutgoingMessage(exchange: "no.such.exchange", routingKey: "x", message: message(1, to: "x").message))
        }
        // The publisher recovers for the next call.
        let queue = TestEnvironment.uniqueName("test.recover")
        let healthy = AMQPPublisher(configuration: TestEnvironment.amqp, topology: topology(queue), logger: logger)
        defer { healthy.shutdown() }
        try await healthy.publish(message(2, to: queue))
    }

    @Test func anUnackedMessageIsRedeliveredWhenItsConsumerDies() async throws {
        let queue = TestEnvironment.uniqueName("test.redeliver")
        let publisher = AMQPPublisher(configuration: TestEnvironment.amqp, topology: topology(queue), logger: logger)
        defer { publisher.shutdown() }
        try await publisher.publish(message(1, to: queue))

        let first = AMQPConsumer(
            configuration: TestEnvironment.amqp, topology: topology(queue), queue: queue, logger: logger)
        let firstCollector = DeliveryCollector(first)
        let got = await firstCollector.waitFor(1)
        #expect(got.count == 1)
        first.shutdown()  // dies holding the message, unacked

        let second = AMQPConsumer(
            configuration: TestEnvironment.amqp, topology: topology(queue), queue: queue, logger: logger)
        defer { second.shutdown() }
        let again = await DeliveryCollector(second).waitFor(1)
        let redelivered = try #require(again.first)
        #expect(redelivered.message.messageID == "m-1")
        #expect(redelivered.redelivered)
        #expect(redelivered.deliveryCount == 1)
        redelivered.settle(.ack)
    }

    @Test func aRejectedMessageIsDeadLetteredAndTheConsumerGoesOn() async throws {
        let queue = TestEnvironment.uniqueName("test.reject")
        let deadLetter = TestEnvironment.uniqueName("test.dlx")
        let publisher = AMQPPublisher(
            configuration: TestEnvironment.amqp, topology: topology(queue, deadLetter: deadLetter), logger: logger)
        defer { publisher.shutdown() }
        try await publisher.publish([message(1, to: queue), message(2, to: queue)])

        let consumer = AMQPConsumer(
            configuration: TestEnvironment.amqp, topology: topology(queue, deadLetter: deadLetter), queue: queue,
            logger: logger)
        defer { consumer.shutdown() }
        let deliveries = await DeliveryCollector(consumer).waitFor(2)
        #expect(deliveries.count == 2)
        deliveries[0].settle(.reject)
        deliveries[1].settle(.ack)

        let deadLetters = AMQPConsumer(
            configuration: TestEnvironment.amqp, topology: topology(queue, deadLetter: deadLetter),
            queue: "\(deadLetter).queue", logger: logger)
        defer { deadLetters.shutdown() }
        let dead = await DeliveryCollector(deadLetters).waitFor(1)
        #expect(dead.map(\.message.messageID) == [deliveries[0].message.messageID])
        dead.forEach { $0.settle(.ack) }
    }

    @Test func publisherAndConsumerReconnectAfterTheBrokerRestarts() async throws {
        let queue = TestEnvironment.uniqueName("test.restart")
        let publisher = AMQPPublisher(configuration: TestEnvironment.amqp, topology: topology(queue), logger: logger)
        defer { publisher.shutdown() }
        let consumer = AMQPConsumer(
            configuration: TestEnvironment.amqp, topology: topology(queue), queue: queue, logger: logger)
        defer { consumer.shutdown() }
        let collector = DeliveryCollector(consumer)
        #expect(try await publishEventually(publisher, message(1, to: queue)))
        #expect(await collector.waitFor(1).count == 1)
        collector.received.forEach { $0.settle(.ack) }

        try await TestEnvironment.restartBroker()

        // Publishing fails while the broker is away and works again once it is back; no restart of our side.
        #expect(try await publishEventually(publisher, message(2, to: queue)))
        let after = await collector.waitFor(2, seconds: 30)
        #expect(after.map(\.message.messageID).contains("m-2"))
        #expect(consumer.isConnected)
        after.forEach { $0.settle(.ack) }
    }
}
