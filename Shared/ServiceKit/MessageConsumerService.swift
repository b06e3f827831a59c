import AMQP
import Logging
import Messaging
import Metrics
import Persistence
import PostgresNIO
import Reliability
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
/// own) and returns the rows written. When it is given an `InboxClaim`, its last statement should take the claim in
/// (`\(claiming:)`, `\(duplicateMarker:)`) and so save the claim's round trip; a claim it leaves is made after it.
public typealias OutboxWritingHandler =
    @Sendable (AMQPDelivery, PostgresConnection, InboxClaim?) async throws -> [OutboxEntry]

/// Applies a batch of messages that are idempotent by themselves (an insert that ignores a repeat, an update guarded
/// by a version) and cause no messages: no inbox rows, one transaction for the batch. For projections of events; a
/// handler folds the batch into as few statements as it can.
public typealias ProjectionHandler = @Sendable ([AMQPDelivery], PostgresConnection) async throws -> Void

/// How often a message that fails is tried before it is given up. Every failure of a delivery is retried with
/// backoff; after `attemptsPerDelivery` failures the delivery goes back to the queue (so another replica may try),
/// and once it has been delivered `deliveries` times it is dead-lettered with its reason. A message that fails the
/// same way every time (an error without a SQLSTATE, a deadline) is so tried at most attemptsPerDelivery x
/// deliveries times instead of holding a slot for ever; a database outage of a minute or so is outlasted.
public struct MessageRetryPolicy: Sendable {
    /// How long one attempt at a message (or a batch) may take before it is abandoned and retried.
    public var attemptDeadline: Double
    public var attemptsPerDelivery: Int
    public var deliveries: Int

    public init(attemptDeadline: Double = 30, attemptsPerDelivery: Int = 8, deliveries: Int = 3) {
        self.attemptDeadline = attemptDeadline
        self.attemptsPerDelivery = max(1, attemptsPerDelivery)
        self.deliveries = max(1, deliveries)
    }

    /// From `PETS_MESSAGE_DEADLINE_SECONDS`, `PETS_MESSAGE_ATTEMPTS` and `PETS_MESSAGE_DELIVERIES`.
    public init(environment: ServiceEnvironment) throws {
        self.init(
            attemptDeadline: try environment.double("PETS_MESSAGE_DEADLINE_SECONDS", default: 30),
            attemptsPerDelivery: try environment.int("PETS_MESSAGE_ATTEMPTS", default: 8),
            deliveries: try environment.int("PETS_MESSAGE_DELIVERIES", default: 3))
    }
}

/// Consumes a queue in batches: whatever the connection has delivered when a worker is free is applied in one
/// transaction, which claims every message id in the inbox with one statement, runs the handler for each new message
/// in the queue's order and writes their outgoing messages to the outbox; the deliveries are acked only after that
/// commit, together. At low load a batch is one message and nothing waits; under load a commit (and its fsync) is
/// shared by many messages. A batch of one message (the common case below saturation) claims it in the
/// transaction's last statement instead (`InboxClaim`), one round trip less. Duplicates are acked without effect
/// (their transaction is rolled back). When a batch fails, its messages are tried one at a
/// time, so one bad message never fails its batch-mates: a malformed one is dead-lettered at once, any other failure
/// is retried as the `MessageRetryPolicy` says and dead-lettered with its reason in the end.
public final class MessageConsumerService: Service, Sendable {
    private let consumer: AMQPConsumer
    private let client: PostgresClient
    private let relay: OutboxRelay
    private let schemaReady: ReadinessGate
    private let concurrency: Int
    private let policy: MessageRetryPolicy
    private let logger: Logger
    private let handler: Handling
    private let consumed: Counter
    private let duplicates: Counter
    private let deadLettered: Counter
    private let redelivered: Counter
    private let requeued: Counter
    private let batchSizes: Recorder
    private let handling: Timer

    /// What a message does to the database; see the handler types.
    public enum Handling: Sendable {
        /// In a transaction with the inbox claim; the returned messages go to the outbox.
        case transactional(MessageHandler)
        /// In a transaction with the inbox claim; the handler writes the outbox itself.
        case writesOutbox(OutboxWritingHandler)
        /// No inbox: the handler is idempotent by itself and takes the whole batch.
        case projection(ProjectionHandler)
    }

    public convenience init(
        queue: String, consumer: AMQPConsumer, client: PostgresClient, relay: OutboxRelay, schemaReady: ReadinessGate,
        concurrency: Int = 4, policy: MessageRetryPolicy = MessageRetryPolicy(), logger: Logger,
        handler: @escaping MessageHandler
    ) {
        self.init(
            queue: queue, consumer: consumer, client: client, relay: relay, schemaReady: schemaReady,
            concurrency: concurrency, policy: policy, logger: logger, handling: .transactional(handler))
    }

    /// - Parameter concurrency: batches applied at once (each in its own transaction). 1 keeps the queue's order
    ///   and takes the biggest batches.
    public init(
        queue: String, consumer: AMQPConsumer, client: PostgresClient, relay: OutboxRelay, schemaReady: ReadinessGate,
        concurrency: Int = 4, policy: MessageRetryPolicy = MessageRetryPolicy(), logger: Logger, handling: Handling
    ) {
        self.policy = policy
        self.consumer = consumer
        self.client = client
        self.relay = relay
        self.schemaReady = schemaReady
        self.concurrency = max(1, concurrency)
        var logger = logger
        logger[metadataKey: "queue"] = "\(queue)"
        self.logger = logger
        self.handler = handling
        let dimensions = [("queue", queue)]
        consumed = Counter(label: "pets_messages_consumed_total", dimensions: dimensions)
        duplicates = Counter(label: "pets_messages_duplicate_total", dimensions: dimensions)
        deadLettered = Counter(label: "pets_messages_dead_lettered_total", dimensions: dimensions)
        redelivered = Counter(label: "pets_messages_redelivered_total", dimensions: dimensions)
        requeued = Counter(label: "pets_messages_requeued_total", dimensions: dimensions)
        batchSizes = Recorder(label: "pets_message_batch_size", dimensions: dimensions)
        self.handling = Timer(label: "pets_message_handling_seconds", dimensions: dimensions)
    }

    public func run() async throws {
        await schemaReady.wait()
        consumer.start()
        let pending = PendingDeliveries()
        await withDiscardingTaskGroup { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while let batch = await pending.take() {
                        await self.process(batch)
                    }
                }
            }
            for await batch in consumer.batches.cancelOnGracefulShutdown() {
                await pending.add(batch)
            }
            await pending.finish()
        }
        await consumer.stop()
    }

    private func process(_ batch: [AMQPDelivery]) async {
        batchSizes.record(batch.count)
        let started = ContinuousClock.now
        var valid: [AMQPDelivery] = []
        for delivery in batch {
            if delivery.redelivered { redelivered.increment() }
            if delivery.message.messageID.isEmpty {
                deadLetter(delivery, reason: "the message has no message id")
            } else {
                valid.append(delivery)
            }
        }
        guard valid.count > 1 else {
            if let only = valid.first { await processOne(only) }
            return
        }
        let deliveries = valid
        do {
            let (entries, applied) = try await withDeadline(seconds: policy.attemptDeadline) {
                if let seconds = deliveries.lazy.compactMap({ FaultInjection.rule(.delay, $0.message.type) }).first
                    .flatMap(Double.init)
                {
                    try await Task.sleep(for: .seconds(seconds))
                }
                return try await self.apply(deliveries)
            }
            crashIfInjected(deliveries)
            AMQPDelivery.settle(deliveries, .ack)
            relay.send(entries)
            consumed.increment(by: applied)
            duplicates.increment(by: deliveries.count - applied)
            for _ in deliveries { handling.recordInterval(since: started) }
        } catch {
            if Task.isCancelled { return }  // Shutting down: unacked, so the broker redelivers them.
            logger.debug(
                "batch failed; applying its messages one at a time",
                metadata: ["size": "\(deliveries.count)", "error": "\(String(reflecting: error))"])
            for delivery in deliveries { await processOne(delivery) }
        }
    }

    private func processOne(_ delivery: AMQPDelivery) async {
        var logger = logger
        logger[metadataKey: "messageId"] = "\(delivery.message.messageID)"
        logger[metadataKey: "type"] = "\(delivery.message.type)"
        if let correlation = delivery.message.correlationID { logger[metadataKey: "sagaId"] = "\(correlation)" }
        let started = ContinuousClock.now
        var backoff = 0.05
        var failures = 0
        while true {
            do {
                // A deadline on the whole attempt: after a database restart an attempt has been seen to hang in the
                // connection pool; it is abandoned and tried again (the inbox makes that safe). An injected delay
                // counts against it, as a slow handler would.
                let (entries, applied) = try await withDeadline(seconds: policy.attemptDeadline) {
                    if let seconds = FaultInjection.rule(.delay, delivery.message.type).flatMap(Double.init) {
                        try await Task.sleep(for: .seconds(seconds))
                    }
                    return try await self.apply([delivery])
                }
                crashIfInjected([delivery])
                delivery.settle(.ack)
                relay.send(entries)
                if applied > 0 {
                    consumed.increment()
                } else {
                    duplicates.increment()
                    logger.debug("duplicate message dropped by the inbox")
                }
                handling.recordInterval(since: started)
                return
            } catch let error as MalformedMessage {
                deadLetter(delivery, reason: "\(error)")
                return
            } catch  where error is DecodingError {
                deadLetter(delivery, reason: "it does not decode: \(error)")
                return
            } catch {
                if Task.isCancelled { return }  // Shutting down: unacked, so the broker redelivers it.
                failures += 1
                if failures >= policy.attemptsPerDelivery {
                    let reason = "failed \(failures) times in a row: \(String(reflecting: error))"
                    if delivery.deliveryCount + 1 >= policy.deliveries {
                        deadLetter(delivery, reason: "\(reason), on delivery \(delivery.deliveryCount + 1)")
                    } else {
                        // Back to the queue: maybe another replica, or a later moment, does better.
                        logger.error(
                            "handler keeps failing; requeueing",
                            metadata: ["reason": "\(reason)", "delivery": "\(delivery.deliveryCount + 1)"])
                        requeued.increment()
                        delivery.settle(.requeue)
                    }
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

    private func deadLetter(_ delivery: AMQPDelivery, reason: String) {
        logger.error(
            "dead-lettering a message that cannot be handled",
            metadata: [
                "messageId": "\(delivery.message.messageID)", "type": "\(delivery.message.type)", "reason": "\(reason)",
            ])
        deadLettered.increment()
        delivery.settle(.reject)
    }

    private func crashIfInjected(_ deliveries: [AMQPDelivery]) {
        guard FaultInjection.isEnabled else { return }
        for delivery in deliveries where FaultInjection.isActive(.crashAfterCommit, delivery.message.type) {
            FaultInjection.crash("committed \(delivery.message.type) \(delivery.message.messageID), not acked")
        }
    }
}

extension MessageConsumerService {
    /// One attempt at `deliveries` in one transaction: the outbox rows written and how many messages were new (the
    /// inbox knew the others already).
    fileprivate func apply(_ deliveries: [AMQPDelivery]) async throws -> ([OutboxEntry], Int) {
        switch handler {
        case .projection(let handler):
            if deliveries.count == 1 {
                try await client.withConnection { connection in try await handler(deliveries, connection) }
            } else {
                try await client.transaction(logger: logger) { connection in
                    try await handler(deliveries, connection)
                }
            }
            return ([], deliveries.count)
        case .transactional(let handler):
            return try await claimingTransaction(deliveries) { delivery, connection, _, messages, _ in
                messages += try await handler(delivery, connection)
            }
        case .writesOutbox(let handler):
            return try await claimingTransaction(deliveries) { delivery, connection, claim, _, entries in
                entries += try await handler(delivery, connection, claim)
            }
        }
    }

    /// What `body` is given: the message, the transaction's connection, the message's claim when the body may
    /// take it in (one message), the messages to write to the outbox and the outbox rows written.
    private typealias ClaimingBody =
        @Sendable (AMQPDelivery, PostgresConnection, InboxClaim?, inout [OutgoingMessage], inout [OutboxEntry])
        async throws -> Void

    /// A transaction that claims the messages in the inbox (deleting sent outbox rows on the way) and runs `body`
    /// for each new one, in order; the messages the bodies return go to the outbox in one statement at the end.
    /// One message is claimed by the transaction's last statement instead (see `InboxClaim`): the body's own, or
    /// the outbox insert's.
    private func claimingTransaction(_ deliveries: [AMQPDelivery], _ body: @escaping ClaimingBody)
        async throws -> ([OutboxEntry], Int)
    {
        let sent = relay.takeSent()
        if deliveries.count == 1, let delivery = deliveries.first {
            let claim = InboxClaim(messageID: delivery.message.messageID, type: delivery.message.type, deleting: sent)
            do {
                let entries = try await client.transaction(logger: logger) { connection -> [OutboxEntry] in
                    var messages: [OutgoingMessage] = []
                    var entries: [OutboxEntry] = []
                    try await body(delivery, connection, claim, &messages, &entries)
                    if !messages.isEmpty || !claim.isTaken {
                        entries += try await Outbox.enqueue(
                            messages, claiming: claim.isTaken ? nil : claim, on: connection, logger: self.logger)
                    }
                    return entries
                }
                relay.deleted(sent, committed: true)
                return (entries, 1)
            } catch is DuplicateMessage {
                relay.deleted(sent, committed: false)
                return ([], 0)
            } catch {
                relay.deleted(sent, committed: false)
                throw error
            }
        }
        do {
            let result = try await client.transaction(logger: logger) { connection -> ([OutboxEntry], Int) in
                var claimed = try await Inbox.claim(
                    deliveries.map { ($0.message.messageID, $0.message.type) }, deleting: sent, on: connection,
                    logger: self.logger)
                var messages: [OutgoingMessage] = []
                var entries: [OutboxEntry] = []
                var applied = 0
                for delivery in deliveries where claimed.remove(delivery.message.messageID) != nil {
                    try await body(delivery, connection, nil, &messages, &entries)
                    applied += 1
                }
                entries += try await Outbox.enqueue(messages, on: connection, logger: self.logger)
                return (entries, applied)
            }
            relay.deleted(sent, committed: true)
            return result
        } catch {
            relay.deleted(sent, committed: false)
            throw error
        }
    }
}

/// Deliveries waiting for a worker. A worker takes everything there is (up to `maximumBatch`), so batches grow when
/// the workers are busy and stay single messages when they are not; nothing waits on a timer.
actor PendingDeliveries {
    private var buffer: [AMQPDelivery] = []
    private var waiters: [CheckedContinuation<[AMQPDelivery]?, Never>] = []
    private var finished = false
    static let maximumBatch = 128

    func add(_ batch: [AMQPDelivery]) {
        buffer += batch
        while !waiters.isEmpty && !buffer.isEmpty {
            waiters.removeFirst().resume(returning: takeBuffered())
        }
    }

    /// The next batch; nil once finished and empty.
    func take() async -> [AMQPDelivery]? {
        if !buffer.isEmpty { return takeBuffered() }
        if finished { return nil }
        return await withCheckedContinuation { waiters.append($0) }
    }

    func finish() {
        finished = true
        waiters.forEach { $0.resume(returning: nil) }
        waiters = []
    }

    private func takeBuffered() -> [AMQPDelivery] {
        let count = min(buffer.count, Self.maximumBatch)
        defer { buffer.removeFirst(count) }
        return Array(buffer.prefix(count))
    }
}

extension Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
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
