import AMQP
import Foundation
import Logging
import Metrics
import NIOCore
import PostgresNIO
import Reliability
import ServiceLifecycle
import Synchronization

/// Sends committed outbox rows to the broker and deletes them once the broker confirmed them.
///
/// Two paths. The fast one: whoever committed rows hands them to `send(_:)`, which publishes them at once (concurrent
/// sends share one confirm round trip on the publisher's thread) and queues their ids; a deleter removes the
/// confirmed ids in batches. No query runs between a commit and its publish. The safe one: a poller sends, in a
/// transaction that locks them (`FOR UPDATE SKIP LOCKED`, so replicas share the work), the rows nobody is sending:
/// rows older than `recoveryAge` that this process does not hold in memory, left behind by a crash, a failed
/// publish or another replica. A crash between a confirm and the delete sends a row again; consumers' inboxes drop
/// the copy.
public final class OutboxRelay: Service, Sendable {
    private let client: PostgresClient
    private let publisher: AMQPPublisher
    private let logger: Logger
    private let batchSize: Int
    private let pollInterval: Duration
    private let recoveryAge: Duration
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation
    private let deletions: AsyncStream<Void>
    private let deletionContinuation: AsyncStream<Void>.Continuation
    /// Ids this process is publishing or has had confirmed and not yet deleted: the poller leaves them alone.
    private let held = Mutex(HeldOutboxRows())
    private let published = Counter(label: "pets_outbox_published_total")
    private let lag = Timer(label: "pets_outbox_lag_seconds")
    private let backlog = Gauge(label: "pets_outbox_backlog")
    private let oldest = Gauge(label: "pets_outbox_oldest_seconds")

    public init(
        client: PostgresClient, publisher: AMQPPublisher, logger: Logger, batchSize: Int = 256,
        pollInterval: Duration = .milliseconds(500), recoveryAge: Duration = .seconds(1)
    ) {
        self.client = client
        self.publisher = publisher
        self.logger = logger
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.recoveryAge = recoveryAge
        (wakeups, wakeupContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (deletions, deletionContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Publishes rows whose transaction has committed, without waiting. Rows that fail to publish stay in the outbox
    /// and the poller sends them.
    public func send(_ entries: [OutboxEntry]) {
        guard !entries.isEmpty else { return }
        let ids = entries.map(\.row)
        held.withLock { $0.publishing(ids) }
        let started = ContinuousClock.now
        Task { [publisher, logger] in
            do {
                try await publisher.publish(entries.map(\.outgoing))
                Self.crashIfInjected(after: entries.map(\.outgoing))
                held.withLock { $0.published(ids, confirmed: true) }
                published.increment(by: ids.count)
                lag.recordSeconds((ContinuousClock.now - started).inSeconds)
                deletionContinuation.yield()
            } catch {
                held.withLock { $0.published(ids, confirmed: false) }
                logger.warning(
                    "publish failed; the outbox poller will send these", metadata: ["error": "\(error)"])
                wakeupContinuation.yield()
            }
        }
    }

    /// Hands over the sent rows for the caller to delete in a transaction of its own (saving the relay a
    /// statement and a commit); the caller reports the outcome with `deleted(_:committed:)`.
    public func takeSent() -> [OutboxRowID] {
        held.withLock { $0.takeConfirmed() }
    }

    /// After `takeSent()`: the caller's transaction committed (the rows are gone) or not (the relay deletes them).
    public func deleted(_ ids: [OutboxRowID], committed: Bool) {
        guard !ids.isEmpty else { return }
        held.withLock { $0.deleted(ids, committed: committed) }
        if !committed { deletionContinuation.yield() }
    }

    /// Asks the poller to look at once for rows of any age (for writers that do not pass their rows to `send`).
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
        defer { ticker.cancel() }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.deleteConfirmed() }
            await self.poll()
            // Graceful shutdown: the last deletes, then one last pass so committed messages leave before we do.
            self.deletionContinuation.finish()
        }
        try? await drain(minimumAge: .zero)
        // The relay is the connection's last user (consumers stop before it): close it without blocking a thread.
        await publisher.stop()
    }

    private func poll() async {
        var backoff = 0.1
        var lastMeasured = ContinuousClock.now - .seconds(60)
        for await _ in wakeups.cancelOnGracefulShutdown() {
            do {
                try await drain(minimumAge: recoveryAge)
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
    }

    /// Deletes confirmed rows that no consumer took along (`takeSent()`) within a moment, as many as have gathered,
    /// one statement at a time; at shutdown, what is left.
    private func deleteConfirmed() async {
        for await _ in deletions {
            try? await Task.sleep(for: .milliseconds(100))
            await deleteHeld(attempts: .max)
        }
        await deleteHeld(attempts: 3)
    }

    private func deleteHeld(attempts: Int) async {
        var backoff = 0.1
        var failures = 0
        while true {
            let ids = takeSent()
            if ids.isEmpty { return }
            do {
                try await withDeadline(seconds: 30) {
                    try await self.client.transaction(logger: self.logger) { connection in
                        // Need not wait for the disk: a delete lost in a crash sends the rows again, and the
                        // consumers' inboxes drop the copies. One fsync less per message hop.
                        try await connection.run(AsynchronousCommit(), logger: self.logger)
                        try await connection.run(DeleteSent(rows: ids), logger: self.logger)
                    }
                }
                held.withLock { $0.deleted(ids, committed: true) }
                backoff = 0.1
            } catch {
                held.withLock { $0.deleted(ids, committed: false) }
                failures += 1
                // Giving up only re-sends these rows later (and the inboxes drop the copies).
                if failures >= attempts { return }
                logger.warning(
                    "deleting sent outbox rows failed; retrying",
                    metadata: ["error": "\(String(reflecting: error))", "retryIn": "\(backoff)s"])
                try? await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 5)
            }
        }
    }

    /// Relays rows of at least `minimumAge` that this process does not hold, until none are left.
    public func drain(minimumAge: Duration = .zero) async throws {
        while true {
            let sent = try await withDeadline(seconds: 30) { try await self.relayBatch(minimumAge: minimumAge) }
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

    private func relayBatch(minimumAge: Duration) async throws -> Int {
        let seconds = minimumAge.inSeconds
        let held = self.held.withLock { $0.all }
        // A cheap look first, outside a transaction: most polls find nothing.
        let waiting = try await client.query(
            """
            SELECT 1 FROM outbox WHERE created_at <= now() - make_interval(secs => \(seconds))
              AND id <> ALL(\(held)) LIMIT 1
            """,
            logger: logger
        ).collect()
        if waiting.isEmpty { return 0 }
        return try await client.transaction(logger: logger) { connection in
            try await connection.run(AsynchronousCommit(), logger: logger)
            let rows = try await connection.query(
                """
                SELECT id, ctid::text, exchange, routing_key, message_id, type, correlation_id, reply_to, headers::text,
                       content_type, body, extract(epoch FROM now() - created_at)::float8
                FROM outbox WHERE created_at <= now() - make_interval(secs => \(seconds)) AND id <> ALL(\(held))
                ORDER BY id LIMIT \(batchSize) FOR UPDATE SKIP LOCKED
                """,
                logger: logger)
            var sent: [OutboxRowID] = []
            var messages: [OutgoingMessage] = []
            var oldest = 0.0
            for try await (
                id, tid, exchange, routingKey, messageID, type, correlationID, replyTo, headers, contentType, body, age
            )
                in rows.decode(
                    (
                        Int64, String, String, String, String, String, String?, String?, String, String, ByteBuffer,
                        Double
                    )
                    .self)
            {
                sent.append(OutboxRowID(id: id, tid: tid))
                oldest = max(oldest, age)
                let decodedHeaders = (try? JSONDecoder().decode([String: String].self, from: Data(headers.utf8))) ?? [:]
                messages.append(
                    OutgoingMessage(
                        exchange: exchange, routingKey: routingKey,
                        message: AMQPMessage(
                            messageID: messageID, correlationID: correlationID, type: type, replyTo: replyTo,
                            headers: decodedHeaders, contentType: contentType, body: Array(buffer: body))))
            }
            guard !sent.isEmpty else { return 0 }
            try await publisher.publish(messages)
            Self.crashIfInjected(after: messages)
            try await connection.run(DeleteSent(rows: sent), logger: logger)
            published.increment(by: sent.count)
            lag.recordSeconds(oldest)
            return sent.count
        }
    }

    private static func crashIfInjected(after messages: [OutgoingMessage]) {
        if FaultInjection.isEnabled,
            let type = messages.map(\.message.type).first(where: { FaultInjection.isActive(.crashAfterPublish, $0) })
        {
            FaultInjection.crash("published \(type), outbox rows not deleted")
        }
    }
}

/// `DELETE` of sent rows (`deleteHeld`, `relayBatch`), prepared once per connection.
struct DeleteSent: QueryStatement {
    static let name = "pets_outbox_delete_sent"
    static let sql = DeleteSent(rows: []).query.sql
    typealias Row = Void
    let query: PostgresQuery

    init(rows: [OutboxRowID]) { query = "\(deletingSent: rows)" }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
