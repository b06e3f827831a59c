import AMQP
import Foundation
import Logging
import Messaging
import Persistence
import PostgresNIO
import ServiceKit

/// Stock levels and the reservation ledger. Product rows are always locked in product-id order, so concurrent
/// reservations and releases never deadlock.
struct StockStore: Sendable {
    /// The seed's rule: no line may ask for more than this many of one pet.
    static let maximumQuantityPerLine = 10

    let logger: Logger
    /// Called when a reservation or release has changed stock levels (see `StockAnnouncer`).
    var stockChanged: @Sendable () -> Void = {}

    /// Inserts the seed products with `initialStock` each (existing rows keep their stock), then announces every
    /// product's level so the catalogue projection starts right.
    func seed(_ client: PostgresClient, initialStock: Int) async throws {
        try await client.transaction(logger: logger) { connection in
            // In product-id order, the order every writer of these rows locks them in.
            for product in SeedCatalogue.products.sorted(by: { $0.id < $1.id }) {
                try await connection.query(
                    """
                    INSERT INTO products (id, title, stock) VALUES (\(product.id), \(product.title), \(initialStock))
                    ON CONFLICT (id) DO NOTHING
                    """,
                    logger: logger)
            }
            let levels = try await Self.levels(connection, logger: logger)
            try await Outbox.enqueue([try stockEvent(levels)], on: connection, logger: logger)
        }
    }

    /// Sets a pet's stock on hand (an operator's restock) and announces the new level in the same transaction, so
    /// the catalogue follows. Nil when there is no such product.
    func restock(_ productId: String, to stock: Int, _ client: PostgresClient) async throws -> Restocked? {
        try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE products SET stock = \(stock), version = version + 1 WHERE id = \(productId)
                RETURNING id, title, stock, version
                """,
                logger: logger)
            var updated: (StockLevels.Level, String)?
            for try await (id, title, stock, version) in rows.decode((String, String, Int, Int64).self) {
                updated = (.init(productId: id, stock: stock, version: version), title)
            }
            guard let (level, title) = updated else { return nil }
            let outbox = try await Outbox.enqueue([try stockEvent([level])], on: connection, logger: logger)
            return Restocked(level: level, title: title, outbox: outbox)
        }
    }

    struct Restocked: Sendable {
        var level: StockLevels.Level
        var title: String
        var outbox: [OutboxEntry]
    }

    @Sendable
    func reserveInventory(_ command: SagaCommand<ReserveInventory>, _ connection: PostgresConnection, _ logger: Logger)
        async throws -> StepOutcome
    {
        let linesJSON = String(decoding: try MessageCodec.encode(command.payload.lines), as: UTF8.self)
        guard let status = try await claim(command, status: .pending, lines: linesJSON, connection) else {
            throw MalformedMessage("reservation row for saga \(command.sagaId) vanished")
        }
        switch status.status {
        case .reserved: return .succeeded()
        case .rejected: return .failed("InsufficientInventory", status.reason ?? FailureMessages.insufficientInventory)
        case .released: return .failed("ReservationReleased", "Error, the reservation was already released")
        case .pending: break
        }

        // Sum per product, then lock in product-id order.
        var wanted: [String: Int] = [:]
        for line in command.payload.lines { wanted[line.productId, default: 0] += line.quantity }
        let productIds = wanted.keys.sorted()
        if wanted.values.contains(where: { $0 > Self.maximumQuantityPerLine || $0 <= 0 }) || productIds.isEmpty {
            return try await reject(command, FailureMessages.insufficientInventory, connection)
        }
        var onHand: [String: Int] = [:]
        for try await (id, stock) in try await connection.execute(LockStatement(productIds: productIds), logger: logger)
        {
            onHand[id] = stock
        }
        for id in productIds where (onHand[id] ?? 0) < wanted[id]! {
            logger.info(
                "insufficient inventory",
                metadata: ["productId": "\(id)", "wanted": "\(wanted[id]!)", "onHand": "\(onHand[id] ?? 0)"])
            return try await reject(command, FailureMessages.insufficientInventory, connection)
        }
        try await move(
            productIds.map { -wanted[$0]! }, of: productIds, settling: command.sagaId, as: .reserved, connection)
        stockChanged()
        return .succeeded()
    }

    @Sendable
    func releaseInventory(_ command: SagaCommand<ReleaseInventory>, _ connection: PostgresConnection, _ logger: Logger)
        async throws -> StepOutcome
    {
        // Nothing reserved yet: the tombstone makes a late reservation fail instead of leaking stock.
        guard let status = try await claim(command, status: .released, lines: "[]", connection) else {
            throw MalformedMessage("reservation row for saga \(command.sagaId) vanished")
        }
        guard status.status == .reserved else {
            if status.status != .released {
                try await connection.query(
                    "UPDATE reservations SET status = \(ReservationStatus.released), updated_at = now() WHERE saga_id = \(command.sagaId)",
                    logger: logger)
            }
            return .succeeded()
        }
        let lines = try MessageCodec.decode([OrderLine].self, from: Array(status.lines.utf8))
        var returned: [String: Int] = [:]
        for line in lines { returned[line.productId, default: 0] += line.quantity }
        let productIds = returned.keys.sorted()
        for try await _ in try await connection.execute(LockStatement(productIds: productIds), logger: logger) {}
        try await move(
            productIds.map { returned[$0]! }, of: productIds, settling: command.sagaId, as: .released, connection)
        stockChanged()
        return .succeeded()
    }

    // MARK: Helpers

    private struct Reservation {
        var status: ReservationStatus
        var reason: String?
        var lines: String
    }

    /// Adds `deltas` to the stock of `productIds` (rows the caller has locked, in id order) and sets the saga's
    /// reservation to `status`, in one statement.
    private func move(
        _ deltas: [Int], of productIds: [String], settling sagaId: String, as status: ReservationStatus,
        _ connection: PostgresConnection
    ) async throws {
        try await connection.run(
            MoveStatement(deltas: deltas, productIds: productIds, sagaId: sagaId, status: status), logger: logger)
    }

    /// Inserts the saga's reservation row with `status` unless one exists, and returns the row, locked either way
    /// (the no-op update of an existing row takes its lock): two attempts of the same command that arrive together
    /// are serialised. One statement.
    private func claim<Payload>(
        _ command: SagaCommand<Payload>, status: ReservationStatus, lines: String, _ connection: PostgresConnection
    ) async throws -> Reservation? {
        let rows = try await connection.execute(
            ClaimStatement(sagaId: command.sagaId, orderId: command.orderId, status: status, lines: lines),
            logger: logger)
        for try await (status, reason, lines) in rows {
            return Reservation(status: status, reason: reason, lines: lines)
        }
        return nil
    }

    private func reject(_ command: SagaCommand<ReserveInventory>, _ reason: String, _ connection: PostgresConnection)
        async throws -> StepOutcome
    {
        try await connection.query(
            "UPDATE reservations SET status = \(ReservationStatus.rejected), reason = \(reason), updated_at = now() WHERE saga_id = \(command.sagaId)",
            logger: logger)
        return .failed("InsufficientInventory", reason)
    }

    /// The products `productIds` (in id order), locked, with their stock.
    struct LockStatement: QueryStatement {
        static let name = "pets_products_lock"
        static let sql = LockStatement(productIds: []).query.sql
        typealias Row = (String, Int)
        let query: PostgresQuery

        init(productIds: [String]) {
            query = "SELECT id, stock FROM products WHERE id = ANY(\(productIds)::text[]) ORDER BY id FOR UPDATE"
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// `move`'s statement, prepared once per connection.
    struct MoveStatement: QueryStatement {
        static let name = "pets_stock_move"
        static let sql = MoveStatement(deltas: [], productIds: [], sagaId: "", status: .reserved).query.sql
        typealias Row = Void
        let query: PostgresQuery

        init(deltas: [Int], productIds: [String], sagaId: String, status: ReservationStatus) {
            query = """
                WITH settled AS (
                    UPDATE reservations SET status = \(status), updated_at = now() WHERE saga_id = \(sagaId)
                )
                UPDATE products SET stock = products.stock + d.delta, version = products.version + 1
                FROM unnest(\(productIds)::text[], \(deltas)::int8[]) AS d(id, delta)
                WHERE products.id = d.id
                """
        }
    }

    /// `claim`'s statement, prepared once per connection.
    struct ClaimStatement: QueryStatement {
        static let name = "pets_reservation_claim"
        static let sql = ClaimStatement(sagaId: "", orderId: "", status: .pending, lines: "").query.sql
        typealias Row = (ReservationStatus, String?, String)
        let query: PostgresQuery

        init(sagaId: String, orderId: String, status: ReservationStatus, lines: String) {
            query = """
                INSERT INTO reservations (saga_id, order_id, status, lines)
                VALUES (\(sagaId), \(orderId), \(status), \(lines)::jsonb)
                ON CONFLICT (saga_id) DO UPDATE SET saga_id = EXCLUDED.saga_id
                RETURNING status, reason, lines::text
                """
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// Every product's stock level, in product-id order.
    static func levels(_ connection: PostgresConnection, logger: Logger) async throws -> [StockLevels.Level] {
        var levels: [StockLevels.Level] = []
        let rows = try await connection.query("SELECT id, stock, version FROM products ORDER BY id", logger: logger)
        for try await (id, stock, version) in rows.decode((String, Int, Int64).self) {
            levels.append(.init(productId: id, stock: stock, version: version))
        }
        return levels
    }

    private func stockEvent(_ levels: [StockLevels.Level]) throws -> OutgoingMessage {
        try OutgoingMessage.make(
            exchange: Exchanges.stock, routingKey: "", type: MessageTypes.stockLevels, body: StockLevels(levels: levels)
        )
    }
}

// MARK: The operator's views (`StockController`)

extension StockStore {
    /// A pet's stock on hand.
    struct ProductStock: Codable, Sendable {
        var productId: String
        var title: String
        var stock: Int
    }

    /// A saga's reservation: its lines and where it stands.
    struct ReservationView: Codable, Sendable {
        var sagaId: String
        var orderId: String
        var status: ReservationStatus
        var reason: String?
        var lines: [OrderLine]
    }

    /// Every pet's stock on hand, by title.
    func stock(_ client: PostgresClient) async throws -> [ProductStock] {
        var result: [ProductStock] = []
        let rows = try await client.query("SELECT id, title, stock FROM products ORDER BY title", logger: logger)
        for try await (id, title, stock) in rows.decode((String, String, Int).self) {
            result.append(ProductStock(productId: id, title: title, stock: stock))
        }
        return result
    }

    /// The reservations of an order's sagas (one, unless a saga was abandoned and restarted).
    func reservations(orderId: String, _ client: PostgresClient) async throws -> [ReservationView] {
        var result: [ReservationView] = []
        let rows = try await client.query(
            "SELECT saga_id, order_id, status, reason, lines::text FROM reservations WHERE order_id = \(orderId)",
            logger: logger)
        for try await (sagaId, orderId, status, reason, lines) in rows.decode(
            (String, String, ReservationStatus, String?, String).self)
        {
            result.append(
                ReservationView(
                    sagaId: sagaId, orderId: orderId, status: status, reason: reason,
                    lines: try MessageCodec.decode([OrderLine].self, from: Array(lines.utf8))))
        }
        return result
    }
}

/// Where a saga's reservation stands (`reservations.status`, whose CHECK lists the same values).
enum ReservationStatus: String, TextColumnEnum {
    /// Being decided: the row is claimed, the stock not yet checked.
    case pending
    case reserved
    case rejected
    /// Released; also the tombstone a release leaves when nothing was reserved, so a late reservation fails.
    case released
}
