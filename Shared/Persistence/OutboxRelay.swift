import AMQP
import Foundation
import Logging
import Metrics
import NIOCore
import PostgresNIO
import ServiceLifecycle

/// Sends committed outbox rows to the broker and deletes them once the broker confirmed them.
///
/// A batch is locked with `FOR UPDATE SKIP LOCKED`, so replicas relay side by side without sending a row twice in
/// the normal case. A crash between the broker's confirm and the delete sends a batch again: consumers' inboxes
/// drop the duplicates. Wakes when `notify()` says a transaction committed new rows, and polls in any case.
public final class OutboxRelay: Service, Sendable {
    private let client: PostgresClient
    private let publisher: AMQPPublisher
    private let logger: Logger
    private let batchSize: Int
    private let pollInterval: Duration
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation
    private let published = Counter(label: "pets_outbox_published_total")
    private let lag = Timer(label: "pets_outbox_lag_seconds")
    private let backlog = Gauge(label: "pets_outbox_backlog")
    private let oldest = Gauge(label: "pets_outbox_oldest_seconds")

    public init(
        client: PostgresClient, publisher: AMQPPublisher, logger: Logger, batchSize: Int = 256,
        pollInterval: Duration = .milliseconds(250)
    ) {
        self.client = client
        self.publisher = publisher
        self.logger = logger
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        (wakeups, wakeupContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Call after a transaction that wrote outbox rows has committed.
    public func notify() {
        wakeupContinuation.yield()
    }

    public func run() async throws {
        publisher.start()
        let ticker = Task { [wakeupContinuation, pollInterval] in
            while !Task.isCancelled {
                try? await Task.sleep(for: pollInterval)
                wakeupContinuation.yield()
            }
        }
        defer {
            ticker.cancel()
            publisher.shutdown()
        }
        var backoff = 0.1
        var lastMeasured = ContinuousClock.now - .seconds(60)
        for await _ in wakeups.cancelOnGracefulShutdown() {
            do {
                try await drain()
                if ContinuousClock.now - lastMeasured > .seconds(5) {
                    lastMeasured = .now
                    try await measureBacklog()
                }
                backoff = 0.1
            } catch {
                logger.warning(
                    "outbox relay failed; retrying",
                    metadata: ["error": "\(String(reflecting: error))", "retryIn": "\(backoff)s"])
                try? await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 5)
            }
        }
        // Graceful shutdown: one last pass so committed messages leave before the process does.
        try? await drain()
    }

    /// Relays until the outbox is empty.
    public func drain() async throws {
        while true {
            let sent = try await withDeadline(seconds: 30) { try await self.relayBatch() }
            if sent < batchSize { return }
        }
    }

    /// What is waiting to be sent, and for how long: the outbox's rows and the age of the oldest.
    private func measureBacklog() async throws {
        let rows = try await client.query(
            "SELECT count(*)::int8, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM outbox",
            logger: logger)
        for try await (count, age) in rows.decode((Int64, Double).self) {
            backlog.record(count)
            oldest.record(age)
        }
    }

    private func relayBatch() async throws -> Int {
        try await client.transaction(logger: logger) { connection in
            // Deleting sent rows need not wait for the disk: if the delete is lost in a crash, the rows are sent
            // again and the consumers' inboxes drop the copies. One fsync less per message hop.
            try await connection.query("SET LOCAL synchronous_commit = off", logger: logger)
            let rows = try await connection.query(
                """
                SELECT id, exchange, routing_key, message_id, type, correlation_id, reply_to, headers::text,
                       content_type, body, extract(epoch FROM now() - created_at)::float8
                FROM outbox ORDER BY id LIMIT \(batchSize) FOR UPDATE SKIP LOCKED
                """,
                logger: logger)
            var ids: [Int64] = []
            var messages: [OutgoingMessage] = []
            var oldest = 0.0
            for try await (
                id, exchange, routingKey, messageID, type, correlationID, replyTo, headers, contentType, body, age
            )
                in rows.decode(
                    (Int64, String, String, String, String, String?, String?, String, String, ByteBuffer, Double).self)
            {
                ids.append(id)
                oldest = max(oldest, age)
                let decodedHeaders = (try? JSONDecoder().decode([String: String].self, from: Data(headers.utf8))) ?? [:]
                messages.append(
                    OutgoingMessage(
                        exchange: exchange, routingKey: routingKey,
                        message: AMQPMessage(
                            messageID: messageID, correlationID: correlationID, type: type, replyTo: replyTo,
                            headers: decodedHeaders, contentType: contentType, body: Array(buffer: body))))
            }
            guard !ids.isEmpty else { return 0 }
            try await publisher.publish(messages)
            if FaultInjection.isEnabled,
                let type = messages.map(\.message.type).first(where: { FaultInjection.isActive(.crashAfterPublish, $0) }
                )
            {
                FaultInjection.crash("published \(type), outbox rows not deleted")
            }
            try await connection.query("DELETE FROM outbox WHERE id = ANY(\(ids))", logger: logger)
            published.increment(by: ids.count)
            lag.recordSeconds(oldest)
            return ids.count
        }
    }
}
