import AMQP
import Crypto
import Foundation
import Logging
import Messaging
import Persistence
import PostgresNIO
import ServiceKit
import Synchronization

/// The `orders` database: orders, the catalogue projection and each order's status history.
struct OrderRepository: Sendable {
    let client: PostgresClient
    let logger: Logger
    /// Titles and prices, read once: they change only with the seed at start, and every order is checked against
    /// them (a query per order saved).
    private let productCache = ProductCache()

    struct Placed: Sendable {
        var orderId: String
        /// False when an earlier request with the same idempotency key placed it.
        var created: Bool
        /// The committed message that starts the saga, for the relay (empty when not created).
        var outbox: [OutboxEntry] = []
    }

    struct IdempotencyConflict: Error {}

    /// `place`'s statement, prepared once per connection. One statement, so atomic without a transaction: the order
    /// and its outbox row, or (a repeated idempotency key) neither.
    struct PlaceStatement: QueryStatement {
        static let name = "pets_order_place"
        static let sql = PlaceStatement(
            orderId: "", basket: "", address: "", last4: "", cardholderName: "", itemsCents: 0, idempotencyKey: nil,
            requestHash: "", now: Date(), startMessage: "", traceparent: "", outbox: OutboxRows()
        ).query.sql
        typealias Row = (Int64, String, String)
        let query: PostgresQuery

        init(
            orderId: String, basket: String, address: String, last4: String, cardholderName: String, itemsCents: Int,
            idempotencyKey: String?, requestHash: String, now: Date, startMessage: String, traceparent: String,
            outbox: OutboxRows
        ) {
            query = """
                WITH placed AS (
                    INSERT INTO orders (id, status, basket, shipping_address, card_last4, cardholder_name, items_cents,
                                        idempotency_key, request_hash, created_on, updated_on, start_message, traceparent)
                    VALUES (\(orderId), \(OrderStatus.placed), \(basket)::jsonb, \(address)::jsonb, \(last4), \(cardholderName),
                            \(itemsCents), \(idempotencyKey), \(requestHash), \(now), \(now), \(startMessage), \(traceparent))
                    ON CONFLICT (idempotency_key) DO NOTHING RETURNING id
                )
                \(insertOutbox: outbox)
                WHERE EXISTS (SELECT 1 FROM placed)
                RETURNING \(unescaped: Outbox.returnedColumns)
                """
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// Stores the order and, atomically with it, the message that starts its saga.
    func place(_ order: ValidOrder, idempotencyKey: String?, requestHash: String, traceparent: String) async throws
        -> Placed
    {
        let orderId = UUID().uuidString.lowercased()
        let now = Date()
        let basket = String(decoding: try MessageCodec.encode(order.lines.map(BasketLine.init)), as: UTF8.self)
        let address = String(
            decoding: try MessageCodec.encode(
                ShippingAddress(address: order.address, city: order.city, postCode: order.postCode)), as: UTF8.self)
        let start = StartPlaceOrder(
            orderId: orderId, lines: order.lines, postCode: order.postCode, card: order.card,
            createdOn: Timestamp.string(now))
        let message = try OutgoingMessage.make(
            routingKey: Queues.orchestratorCommands, type: MessageTypes.startPlaceOrder, correlationID: orderId,
            headers: ["traceparent": traceparent], body: start)
        let rows = try OutboxRows([message])
        // Kept with the order, for `UnstartedOrders` to send again should this one be dead-lettered.
        let startMessage = String(decoding: message.message.body, as: UTF8.self)
        // One statement, so atomic without a transaction: the order and its outbox row, or (a repeated
        // idempotency key) neither.
        let inserted = try await client.execute(
            PlaceStatement(
                orderId: orderId, basket: basket, address: address, last4: order.card.last4,
                cardholderName: order.card.cardholderName, itemsCents: order.itemsCents, idempotencyKey: idempotencyKey,
                requestHash: requestHash, now: now, startMessage: startMessage, traceparent: traceparent, outbox: rows),
            logger: logger)
        let outbox = try await OutboxRows.entries(from: inserted, messages: [message])
        if !outbox.isEmpty { return Placed(orderId: orderId, created: true, outbox: outbox) }
        let existing = try await client.query(
            "SELECT id, request_hash FROM orders WHERE idempotency_key = \(idempotencyKey)", logger: logger)
        for try await (existingId, hash) in existing.decode((String, String?).self) {
            guard hash == requestHash else { throw IdempotencyConflict() }
            return Placed(orderId: existingId, created: false)
        }
        throw IdempotencyConflict()
    }

    func order(_ id: String) async throws -> OrderView? {
        let rows = try await client.query(
            "SELECT \(unescaped: OrderView.columns) FROM orders o WHERE o.id = \(id)", logger: logger)
        for try await row in rows.decode(OrderView.Row.self) { return try OrderView(row) }
        return nil
    }

    /// Orders in (created_on, id) order after `after`, with each one's key for the next page.
    func ordersPage(after: (createdOn: String, id: String)?, limit: Int) async throws -> [(
        OrderView, (createdOn: String, id: String)
    )] {
        let rows: PostgresRowSequence
        if let after {
            rows = try await client.query(
                """
                SELECT \(unescaped: OrderView.columns), o.created_on::text FROM orders o
                WHERE (o.created_on, o.id) > (\(after.createdOn)::timestamptz, \(after.id))
                ORDER BY o.created_on, o.id LIMIT \(limit)
                """,
                logger: logger)
        } else {
            rows = try await client.query(
                "SELECT \(unescaped: OrderView.columns), o.created_on::text FROM orders o ORDER BY o.created_on, o.id LIMIT \(limit)",
                logger: logger)
        }
        var page: [(OrderView, (createdOn: String, id: String))] = []
        page.reserveCapacity(limit)
        for try await row in rows.decode(OrderView.PageRow.self) {
            let view = try OrderView(
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10, row.11))
            page.append((view, (row.12, view.orderId)))
        }
        return page
    }

    func catalogue() async throws -> [CatalogueItem] {
        var items: [CatalogueItem] = []
        let rows = try await client.query(
            "SELECT id, title, unit_price_cents, image_url, stock FROM catalogue ORDER BY unit_price_cents DESC, title",
            logger: logger)
        for try await (id, title, price, image, stock) in rows.decode((String, String, Int, String, Int).self) {
            items.append(
                CatalogueItem(id: id, title: title, unitPrice: Money.dollars(price), imageUrl: image, stock: stock))
        }
        return items
    }

    /// The catalogue's products keyed by id, for pricing orders.
    func products() async throws -> [String: CatalogueProduct] {
        if let cached = productCache.products { return cached }
        let products = try await loadProducts()
        if !products.isEmpty { productCache.products = products }
        return products
    }

    private func loadProducts() async throws -> [String: CatalogueProduct] {
        var products: [String: CatalogueProduct] = [:]
        let rows = try await client.query(
            "SELECT id, title, unit_price_cents, image_url FROM catalogue", logger: logger)
        for try await (id, title, price, image) in rows.decode((String, String, Int, String).self) {
            products[id] = CatalogueProduct(id: id, title: title, unitPriceCents: price, imageUrl: image)
        }
        return products
    }

    /// Inserts the seed products (prices as the seed has them); stock arrives from Inventory.
    func seedCatalogue() async throws {
        try await client.transaction(logger: logger) { connection in
            // In product-id order, the order every writer of these rows locks them in.
            for product in SeedCatalogue.products.sorted(by: { $0.id < $1.id }) {
                try await connection.query(
                    """
                    INSERT INTO catalogue (id, title, unit_price_cents, image_url) VALUES (\(product.id), \(product.title),
                        \(product.unitPriceCents), \(product.imageUrl))
                    ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, unit_price_cents = EXCLUDED.unit_price_cents,
                        image_url = EXCLUDED.image_url
                    """,
                    logger: logger)
            }
        }
    }

    static func hash(_ bytes: [UInt8]) -> String {
        Hex.encode(SHA256.hash(data: bytes))
    }
}

struct BasketLine: Codable, Sendable {
    var id: String
    var title: String
    var quantity: Int
    var unitPrice: Double

    init(_ line: OrderLine) {
        id = line.productId
        title = line.title
        quantity = line.quantity
        unitPrice = Money.dollars(line.unitPriceCents)
    }
}

struct ShippingAddress: Codable, Sendable {
    var address: String
    var city: String
    var postCode: String
}

struct CatalogueItem: Codable, Sendable {
    var id: String
    var title: String
    var unitPrice: Double
    var imageUrl: String
    var stock: Int
}

/// `GET /orders/{id}`: the order as the client sees it.
struct OrderView: Codable, Sendable {
    struct HistoryEntry: Codable, Sendable {
        var seq: Int
        var status: String
        var step: String?
        var message: String?
        var at: String
    }

    var orderId: String
    var orderStatus: OrderStatus
    var basket: [BasketLine]
    var shippingAddress: ShippingAddress
    var cardLast4: String
    var shippingCost: Double?
    var paymentAmount: Double?
    var errorType: String?
    var errorMessage: String?
    var createdOn: String
    var updatedOn: String
    var history: [HistoryEntry]

    /// The columns of `orders` (as `o`) an `OrderView` is read from, the history included.
    static let columns = """
        o.id, o.status, o.basket::text, o.shipping_address::text, o.card_last4, o.shipping_cents, o.payment_cents,
        o.error_type, o.error_message,
        \(Timestamp.sql("o.created_on")), \(Timestamp.sql("o.updated_on")),
        (SELECT coalesce(json_agg(json_build_object('seq', e.seq, 'status', e.status, 'step', e.step,
                                                    'message', e.message, 'at', e.at) ORDER BY e.seq), '[]')::text
         FROM order_events e WHERE e.order_id = o.id)
        """

    typealias Row = (
        String, OrderStatus, String, String, String, Int?, Int?, String?, String?, String, String, String
    )
    /// A row plus its raw `created_on`, the paging key.
    typealias PageRow = (
        String, OrderStatus, String, String, String, Int?, Int?, String?, String?, String, String, String, String
    )

    init(_ row: Row) throws {
        orderId = row.0
        orderStatus = row.1
        basket = try JSONDecoder().decode([BasketLine].self, from: Data(row.2.utf8))
        shippingAddress = try JSONDecoder().decode(ShippingAddress.self, from: Data(row.3.utf8))
        cardLast4 = row.4
        shippingCost = row.5.map(Money.dollars)
        paymentAmount = row.6.map(Money.dollars)
        errorType = row.7
        errorMessage = row.8
        createdOn = row.9
        updatedOn = row.10
        history = try JSONDecoder().decode([HistoryEntry].self, from: Data(row.11.utf8))
    }
}

/// The catalogue's titles and prices once loaded (see `OrderRepository.products()`).
final class ProductCache: Sendable {
    private let cached = Mutex<[String: CatalogueProduct]?>(nil)
    var products: [String: CatalogueProduct]? {
        get { cached.withLock { $0 } }
        set { cached.withLock { $0 = newValue } }
    }
}

/// Where an order stands, as `orders.status` stores it (its CHECK lists the same values) and the API shows it.
enum OrderStatus: String, TextColumnEnum {
    /// Taken, and its saga started or about to.
    case placed
    /// Its saga succeeded: reserved, charged, completed.
    case completed
    /// Its saga failed (and undid its steps) or never began.
    case cancelled
}
