import AMQP
import Logging
import Messaging
import Metrics
import Persistence
import PostgresNIO
import ServiceLifecycle

/// A message that can never be handled (not JSON, wrong schema, unknown type): dead-lettered at once.
public struct MalformedMessage: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Applies a message inside a transaction and returns the messages it causes (written to the outbox in the same
/// transaction).
public typealias MessageHandler = @Sendable (AMQPDelivery, PostgresConnection) async throws -> [OutgoingMessage]

/// A `MessageHandler` that writes its outgoing messages to the outbox itself (to fold them into a statement of its
/// own) and returns the rows written.
public typealias OutboxWritingHandler = @Sendable (AMQPDelivery, PostgresConnection) async throws -> [OutboxEntry]

/// Applies a message that is idempotent by itself (an insert that ignores a repeat, an update guarded by a version)
/// and causes no messages: one statement, no transaction, no inbox row. For projections of events.
public typealias ProjectionHandler = @Sendable (AMQPDelivery, PostgresConnection) async throws -> Void

/// Consumes a queue: for each delivery, one transaction claims its id in the inbox, applies it and writes its
/// outgoing messages to the outbox; the delivery is acked only after that commit. A duplicate is acked without
/// effect. A transient database failure is retried with backoff while the delivery stays unacked; a malformed
/// message is dead-lettered; any other failure requeues it, and the queue's delivery limit dead-letters it in the end.
public final class MessageConsumerService: Service, Sendable {
    private let consumer: AMQPConsumer
    private let client: PostgresClient
    private let relay: OutboxRelay
    private let schemaReady: ReadinessGate
    private let concurrency: Int
    private let logger: Logger
    private let handler: Handling
    private let consumed: Counter
    private let duplicates: Counter
    private let deadLettered: Counter
    private let redelivered: Counter
    private let handling: Timer

    /// What a message does to the database; see the handler types.
    public enum Handling: Sendable {
        /// In a transaction with the inbox claim; the returned messages go to the outbox.
        case transactional(MessageHandler)
        /// In a transaction with the inbox claim; the handler writes the outbox itself.
        case writesOutbox(OutboxWritingHandler)
        /// No transaction, no inbox: the handler is idempotent by itself.
        case projection(ProjectionHandler)
    }

    public convenience init(
        queue: String, consumer: AMQPConsumer, client: PostgresClient, relay: OutboxRelay, schemaReady: ReadinessGate,
        concurrency: Int = 16, logger: Logger, handler: @escaping MessageHandler
    ) {
        self.init(
            queue: queue, consumer: consumer, client: client, relay: relay, schemaReady: schemaReady,
            concurrency: concurrency, logger: logger, handling: .transactional(handler))
    }

    public init(
        queue: String, consumer: AMQPConsumer, client: PostgresClient, relay: OutboxRelay, schemaReady: ReadinessGate,
        concurrency: Int = 16, logger: Logger, handling: Handling
    ) {
        self.consumer = consumer
        self.client = client
        self.relay = relay
        self.schemaReady = schemaReady
        self.concurrency = concurrency
        var logger = logger
        logger[metadataKey: "queue"] = "\(queue)"
        self.logger = logger
        self.handler = handling
        let dimensions = [("queue", queue)]
        consumed = Counter(label: "pets_messages_consumed_total", dimensions: dimensions)
        duplicates = Counter(label: "pets_messages_duplicate_total", dimensions: dimensions)
        deadLettered = Counter(label: "pets_messages_dead_lettered_total", dimensions: dimensions)
        redelivered = Counter(label: "pets_messages_redelivered_total", dimensions: dimensions)
        self.handling = Timer(label: "pets_message_handling_seconds", dimensions: dimensions)
    }

    /// How long one attempt at a message may take before it is abandoned and retried.
    static let attemptDeadline = 30.0

    public func run() async throws {
        await schemaReady.wait()
        let slots = Slots(concurrency)
        await withDiscardingTaskGroup { group in
            for await delivery in consumer.deliveries.cancelOnGracefulShutdown() {
                await slots.acquire()
                group.addTask {
                    await self.process(delivery)
                    await slots.release()
                }
            }
        }
        await consumer.stop()
    }

    private func process(_ delivery: AMQPDelivery) async {
        var logger = logger
        logger[metadataKey: "messageId"] = "\(delivery.message.messageID)"
        logger[metadataKey: "type"] = "\(delivery.message.type)"
        if let correlation = delivery.message.correlationID { logger[metadataKey: "sagaId"] = "\(correlation)" }
        if delivery.redelivered { redelivered.increment() }
        let started = ContinuousClock.now
        var backoff = 0.05
        var failures = 0
        while true {
            do {
                guard !delivery.message.messageID.isEmpty else {
                    throw MalformedMessage("the message has no message id")
                }
                if let seconds = FaultInjection.rule(.delay, delivery.message.type).flatMap(Double.init) {
                    try await Task.sleep(for: .seconds(seconds))
                }
                // A deadline on the whole transaction: after a database restart an attempt has been seen to hang
                // in the connection pool; it is abandoned and tried again (the inbox makes that safe).
                let outbox: [OutboxEntry]? = try await withDeadline(seconds: Self.attemptDeadline) {
                    try await self.apply(delivery)
                }
                let applied = outbox != nil
                if applied && FaultInjection.isActive(.crashAfterCommit, delivery.message.type) {
                    FaultInjection.crash("committed \(delivery.message.type) \(delivery.message.messageID), not acked")
                }
                delivery.settle(.ack)
                if let outbox {
                    relay.send(outbox)
                    consumed.increment()
                } else {
                    duplicates.increment()
                    logger.debug("duplicate message dropped by the inbox")
                }
                handling.recordInterval(since: started)
                return
            } catch let error as MalformedMessage {
                logger.error("dead-lettering a malformed message", metadata: ["reason": "\(error)"])
                deadLettered.increment()
                delivery.settle(.reject)
                return
            } catch  where error is DecodingError {
                logger.error("dead-lettering a message that does not decode", metadata: ["reason": "\(error)"])
                deadLettered.increment()
                delivery.settle(.reject)
                return
            } catch {
                if Task.isCancelled { return }  // Shutting down: unacked, so the broker redelivers it.
                failures += 1
                if !DatabaseErrors.isTransient(error) && !(error is DeadlineExceeded) && failures >= 3 {
                    logger.error(
                        "handler keeps failing; requeueing", metadata: ["error": "\(String(reflecting: error))"])
                    delivery.settle(.requeue)
                    return
                }
                logger.warning(
                    "handling failed; retrying",
                    metadata: ["error": "\(String(reflecting: error))", "retryIn": "\(backoff)s"])
                try? await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 5)
            }
        }
    }
}

extension MessageConsumerService {
    /// One attempt at `delivery`: the outbox rows it wrote, or nil when the inbox knew it already.
    fileprivate func apply(_ delivery: AMQPDelivery) async throws -> [OutboxEntry]? {
        let message = delivery.message
        switch handler {
        case .transactional(let handler):
            return try await claimingTransaction(message) { connection in
                try await Outbox.enqueue(try await handler(delivery, connection), on: connection, logger: self.logger)
            }
        case .writesOutbox(let handler):
            return try await claimingTransaction(message) { connection in try await handler(delivery, connection) }
        case .projection(let handler):
            try await client.withConnection { connection in try await handler(delivery, connection) }
            return []
        }
    }

    /// A transaction that claims the message in the inbox (deleting sent outbox rows on the way) and then runs
    /// `body`; nil without running it when the message is a duplicate.
    private func claimingTransaction(
        _ message: AMQPMessage, _ body: @escaping (PostgresConnection) async throws -> [OutboxEntry]
    ) async throws -> [OutboxEntry]? {
        let sent = relay.takeSent()
        do {
            let result = try await client.transaction(logger: logger) { connection -> [OutboxEntry]? in
                guard
                    try await Inbox.claim(
                        message.messageID, type: message.type, deleting: sent, on: connection, logger: self.logger)
                else { return nil }
                return try await body(connection)
            }
            relay.deleted(sent, committed: true)
            return result
        } catch {
            relay.deleted(sent, committed: false)
            throw error
        }
    }
}

extension Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}

/// A counting semaphore for tasks: at most `count` deliveries are handled at once.
actor Slots {
    private var free: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(_ count: Int) { free = count }

    func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            free += 1
        } else {
            waiters.removeFirst().resume()
        }
    }
}

/// Opens once, when the database schema is in place; consumers wait on it before they take messages.
public actor ReadinessGate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init() {}

    public func open() {
        isOpen = true
        waiters.forEach { $0.resume() }
        waiters.removeAll()
    }

    public func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    public var opened: Bool { isOpen }
}
