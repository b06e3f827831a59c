import AMQP
import Logging
import Messaging
import Persistence
import PostgresNIO
import ServiceKit

/// The Order service as a saga participant (`completeOrder`, `cancelOrder`) and as a projection of saga status
/// and stock events.
struct OrderHandlers: Sendable {
    let logger: Logger

    @Sendable
    func completeOrder(_ command: SagaCommand<CompleteOrder>, _ connection: PostgresConnection, _ logger: Logger)
        async throws -> StepOutcome
    {
        // One statement: lock the order, read its status, and complete it unless it is complete or cancelled.
        let rows = try await connection.execute(
            CompleteStatement(
                orderId: command.orderId, shippingCents: command.payload.shippingCents,
                amountCents: command.payload.amountCents),
            logger: logger)
        var status: OrderStatus?
        for try await value in rows { status = value }
        switch status {
        case nil:
            return .failed("OrderNotFound", "Error, order \(command.orderId) does not exist")
        case .cancelled:
            return .failed("OrderCancelled", "Error, order \(command.orderId) was cancelled")
        case .placed, .completed:
            return .succeeded()
        }
    }

    /// Cancels whatever state the order is in: a saga only cancels after undoing its payment and reservation, even
    /// when the order had been completed (its completion's reply was lost).
    @Sendable
    func cancelOrder(_ command: SagaCommand<CancelOrder>, _ connection: PostgresConnection, _ logger: Logger)
        async throws -> StepOutcome
    {
        try await connection.query(
            """
            UPDATE orders SET status = \(OrderStatus.cancelled), error_type = \(command.payload.errorType),
                error_message = \(command.payload.errorMessage), payment_cents = NULL, updated_on = now()
            WHERE id = \(command.orderId) AND status <> \(OrderStatus.cancelled)
            """,
            logger: logger)
        return .succeeded()
    }

    /// Saga status events become the order's history; stock events update the catalogue (newest version wins).
    /// A batch is folded into at most two statements (every status event in one insert, the newest level of each
    /// product in one update), each of which a repeat leaves unchanged, so no inbox rows are needed.
    var projectEvent: ProjectionHandler {
        { [logger] deliveries, connection in
            var events: [StatusEvent] = []
            var newest: [String: StockLevels.Level] = [:]
            for delivery in deliveries {
                switch delivery.message.type {
                case MessageTypes.orderStatus:
                    events += try StatusEvent.decodeMessage(delivery.message.body)
                case MessageTypes.stockLevels:
                    for level in try MessageCodec.decode(StockLevels.self, from: delivery.message.body).levels
                    where (newest[level.productId]?.version ?? .min) < level.version {
                        newest[level.productId] = level
                    }
                default:
                    throw MalformedMessage("order.events takes status and stock events, got '\(delivery.message.type)'")
                }
            }
            if !events.isEmpty {
                try await connection.run(RecordEvents(events: events), logger: logger)
            }
            if !newest.isEmpty {
                // In product-id order, the order every writer of these rows locks them in.
                let levels = newest.values.sorted(by: { $0.productId < $1.productId })
                try await connection.run(UpdateStock(levels: levels), logger: logger)
            }
        }
    }
}

/// `projectEvent`'s statements, prepared once per connection.
extension OrderHandlers {
    /// `completeOrder`'s statement: lock the order, read its status, and complete it unless it is complete or
    /// cancelled.
    struct CompleteStatement: QueryStatement {
        static let name = "pets_order_complete"
        static let sql = CompleteStatement(orderId: "", shippingCents: 0, amountCents: 0).query.sql
        typealias Row = OrderStatus
        let query: PostgresQuery

        init(orderId: String, shippingCents: Int, amountCents: Int) {
            query = """
                WITH locked AS (SELECT id, status FROM orders WHERE id = \(orderId) FOR UPDATE),
                completed AS (
                    UPDATE orders SET status = \(OrderStatus.completed), shipping_cents = \(shippingCents),
                        payment_cents = \(amountCents), updated_on = now()
                    FROM locked WHERE orders.id = locked.id AND locked.status NOT IN (\(OrderStatus.completed), \(OrderStatus.cancelled))
                )
                SELECT status FROM locked
                """
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    struct RecordEvents: QueryStatement {
        static let name = "pets_order_events"
        static let sql = RecordEvents(events: []).query.sql
        typealias Row = Void
        let query: PostgresQuery

        init(events: [StatusEvent]) {
            // Empty strings stand for no step or message (text arrays of optionals do not bind).
            query = """
                INSERT INTO order_events (order_id, seq, status, step, message, at)
                SELECT o, s, st, NULLIF(sp, ''), NULLIF(m, ''), a
                FROM unnest(\(events.map(\.orderId))::text[], \(events.map(\.seq))::int8[],
                            \(events.map(\.status.rawValue))::text[], \(events.map { $0.step ?? "" })::text[],
                            \(events.map { $0.message ?? "" })::text[], \(events.map(\.at))::text[])
                     AS e(o, s, st, sp, m, a)
                ON CONFLICT (order_id, seq) DO NOTHING
                """
        }
    }

    struct UpdateStock: QueryStatement {
        static let name = "pets_catalogue_stock"
        static let sql = UpdateStock(levels: []).query.sql
        typealias Row = Void
        let query: PostgresQuery

        init(levels: [StockLevels.Level]) {
            query = """
                UPDATE catalogue SET stock = l.stock, stock_version = l.version
                FROM unnest(\(levels.map(\.productId))::text[], \(levels.map(\.stock))::int8[],
                            \(levels.map(\.version))::int8[]) AS l(id, stock, version)
                WHERE catalogue.id = l.id AND catalogue.stock_version < l.version
                """
        }
    }
}
