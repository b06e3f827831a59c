import AMQP
import Foundation
import Logging
import Messaging
import Metrics
import Persistence
import PostgresNIO

/// Orders whose saga never began. An order learns that its saga exists from the saga's first status event
/// (`started`, projected into `order_events`) or from a `completeOrder`/`cancelOrder` command (the order then is no
/// longer `placed`). A `placed` order with neither, once its start has been out of the outbox for the deadline, had
/// its start lost: dead-lettered (it did not decode, or its delivery limit was reached). Such an order gets its
/// start again (the orchestrator makes one saga per order, so a copy is harmless), then an `abandonPlaceOrder` that
/// makes the orchestrator close the saga and cancel the order with the reason (or do nothing, when the saga exists
/// after all). Should even that get no answer, the abandonment is sent again, ever less often (up to hourly).
///
/// The order is never cancelled here: the sign of its saga may only be late (a backlog on `order.events`), and
/// cancelling an order whose saga runs would undo a good order; the orchestrator alone can tell.
struct UnstartedOrders: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// How long a sent start may go without a sign of the saga (abandonments wait twice as long each time).
    let deadline: Double
    /// How many times the start is sent in all (the first time included) before the order is abandoned.
    let maxAttempts: Int

    static let batchSize = 100
    static let errorType = "SagaNotStarted"

    private static let resent = Counter(label: "pets_order_starts_resent_total")
    private static let abandoned = Counter(label: "pets_orders_abandoned_total")
    private static let abandonRepeated = Counter(label: "pets_order_abandons_repeated_total")

    /// What to do about one overdue order. Pure: `UnstartedOrderTests` covers every case.
    enum Action: Equatable {
        /// The last message is still in the outbox (the broker is unreachable): its deadline has not begun.
        case wait
        /// Send the start again.
        case resend
        /// Ask the orchestrator to close the saga and cancel the order (again, if it did not answer).
        case abandon

        /// - Parameters:
        ///   - attempts: messages sent so far: starts, then abandonments (above `maxAttempts`).
        ///   - hasStart: the order kept its start message (orders placed before that column existed did not).
        static func next(attempts: Int, unsent: Bool, hasStart: Bool, maxAttempts: Int) -> Action {
            if unsent { return .wait }
            if attempts < maxAttempts && hasStart { return .resend }
            return .abandon
        }
    }

    func reason() -> String {
        "Error, the order could not be started: no saga began after \(maxAttempts) attempts"
    }

    /// Handles one batch of overdue orders in one transaction; returns how many it looked at and the outbox rows to
    /// relay after the commit. `FOR UPDATE SKIP LOCKED`: replicas share the work, and an order a command is
    /// changing right now is left for the next sweep.
    func sweep() async throws -> (Int, [OutboxEntry]) {
        try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                SELECT o.id, o.start_attempts, o.start_message, o.traceparent,
                       \(unescaped: Timestamp.sql("o.created_on")),
                       EXISTS (SELECT 1 FROM outbox m WHERE m.correlation_id = o.id
                               AND m.type IN (\(MessageTypes.startPlaceOrder), \(MessageTypes.abandonPlaceOrder)))
                FROM orders o
                WHERE o.status = \(OrderStatus.placed) AND o.start_sent_at <= now() - make_interval(secs => \(deadline))
                  -- After an abandonment, twice as long as after the one before, at most an hour.
                  AND o.start_sent_at <= now() - make_interval(secs => least(
                      \(deadline) * power(2::float8, least(greatest(o.start_attempts - \(maxAttempts), 0), 30)),
                      greatest(\(deadline), 3600)))
                  AND NOT EXISTS (SELECT 1 FROM order_events e WHERE e.order_id = o.id)
                ORDER BY o.start_sent_at LIMIT \(Self.batchSize)
                FOR UPDATE OF o SKIP LOCKED
                """,
                logger: logger)
            var ids: [Action: [String]] = [:]
            var messages: [OutgoingMessage] = []
            var count = 0
            var repeated = 0
            for try await (orderId, attempts, start, traceparent, createdOn, unsent) in rows.decode(
                (String, Int, String?, String?, String, Bool).self)
            {
                count += 1
                let action = Action.next(
                    attempts: attempts, unsent: unsent, hasStart: start != nil, maxAttempts: maxAttempts)
                ids[action, default: []].append(orderId)
                let headers = traceparent.map { ["traceparent": $0] } ?? [:]
                var logger = logger
                logger[metadataKey: "orderId"] = "\(orderId)"
                switch action {
                case .wait:
                    break
                case .resend:
                    logger.warning(
                        "no saga for this order yet; sending its start again",
                        metadata: ["attempt": "\(attempts + 1)", "deadlineSeconds": "\(deadline)"])
                    messages.append(
                        OutgoingMessage(
                            routingKey: Queues.orchestratorCommands,
                            message: AMQPMessage(
                                messageID: UUID().uuidString.lowercased(), correlationID: orderId,
                                type: MessageTypes.startPlaceOrder, headers: headers, body: Array((start ?? "").utf8))))
                case .abandon:
                    if attempts > maxAttempts {
                        repeated += 1
                        logger.error(
                            "the orchestrator did not answer the order's abandonment; sending it again",
                            metadata: ["attempts": "\(attempts)"])
                    } else {
                        logger.error(
                            "no saga for this order after every start; asking the orchestrator to cancel it",
                            metadata: ["attempts": "\(attempts)"])
                    }
                    messages.append(
                        try OutgoingMessage.make(
                            routingKey: Queues.orchestratorCommands, type: MessageTypes.abandonPlaceOrder,
                            correlationID: orderId, headers: headers,
                            body: AbandonPlaceOrder(
                                orderId: orderId, errorType: Self.errorType, errorMessage: reason(),
                                createdOn: createdOn)))
                }
            }
            if let wait = ids[.wait] {
                try await connection.query(
                    "UPDATE orders SET start_sent_at = now() WHERE id = ANY(\(wait))", logger: logger)
            }
            if let resend = ids[.resend] {
                try await connection.query(
                    """
                    UPDATE orders SET start_attempts = start_attempts + 1, start_sent_at = now()
                    WHERE id = ANY(\(resend))
                    """,
                    logger: logger)
            }
            if let abandon = ids[.abandon] {
                try await connection.query(
                    """
                    UPDATE orders SET start_attempts = greatest(start_attempts + 1, \(maxAttempts + 1)),
                        start_sent_at = now()
                    WHERE id = ANY(\(abandon))
                    """,
                    logger: logger)
            }
            let outbox = try await Outbox.enqueue(messages, on: connection, logger: logger)
            Self.resent.increment(by: ids[.resend]?.count ?? 0)
            Self.abandoned.increment(by: (ids[.abandon]?.count ?? 0) - repeated)
            Self.abandonRepeated.increment(by: repeated)
            return (count, outbox)
        }
    }
}
