import Foundation
import Hummingbird
import Logging
import Messaging
import Persistence
import PostgresNIO
import ServiceKit

/// The operator's views and the restock: stock on hand, an order's reservation, setting a pet's stock. Every route
/// needs the operator credential.
struct StockController: Sendable {
    let client: PostgresClient
    let store: StockStore
    let relay: OutboxRelay
    let credential: OperatorCredential
    let logger: Logger
    /// The most one pet can be restocked to: a typo of a few extra digits is refused instead of stored.
    static let maximumStock = 1_000_000

    struct RestockBody: Codable {
        var stock: Int
    }

    struct ProductStock: Codable {
        var productId: String
        var title: String
        var stock: Int
    }

    struct ReservationView: Codable {
        var sagaId: String
        var orderId: String
        var status: String
        var reason: String?
        var lines: [OrderLine]
    }

    func addRoutes(to parent: Router<some RequestContext>) {
        let router = parent.group().add(middleware: OperatorAuthMiddleware(credential))
        router.get("stock") { _, _ -> Response in
            var result: [ProductStock] = []
            let rows = try await client.query("SELECT id, title, stock FROM products ORDER BY title", logger: logger)
            for try await (id, title, stock) in rows.decode((String, String, Int).self) {
                result.append(ProductStock(productId: id, title: title, stock: stock))
            }
            return .json(result)
        }
        router.put("stock/:productId") { request, context -> Response in
            let productId = try context.parameters.require("productId").lowercased()
            var request = request
            let body: RestockBody
            do {
                let bytes = try await request.collectBody(upTo: 4_096)
                body = try JSONDecoder().decode(RestockBody.self, from: Data(buffer: bytes))
            } catch {
                return .json(
                    FailureBody(message: #"The body must be {"stock": N}, N a whole number of pets."#),
                    status: .badRequest)
            }
            guard (0...Self.maximumStock).contains(body.stock) else {
                return .json(
                    FailureBody(message: "stock must be a whole number from 0 to \(Self.maximumStock)."),
                    status: .badRequest)
            }
            guard let restocked = try await store.restock(productId, to: body.stock, client) else {
                return .json(FailureBody(message: "No pet with id \(productId)."), status: .notFound)
            }
            relay.send(restocked.outbox)
            logger.notice(
                "restocked", metadata: ["productId": "\(productId)", "stock": "\(restocked.level.stock)"])
            return .json(
                ProductStock(productId: restocked.level.productId, title: restocked.title, stock: restocked.level.stock)
            )
        }
        router.get("reservations/:orderId") { _, context -> Response in
            let orderId = try context.parameters.require("orderId").lowercased()
            var result: [ReservationView] = []
            let rows = try await client.query(
                "SELECT saga_id, order_id, status, reason, lines::text FROM reservations WHERE order_id = \(orderId)",
                logger: logger)
            for try await (sagaId, orderId, status, reason, lines) in rows.decode(
                (String, String, String, String?, String).self)
            {
                result.append(
                    ReservationView(
                        sagaId: sagaId, orderId: orderId, status: status, reason: reason,
                        lines: try MessageCodec.decode([OrderLine].self, from: Array(lines.utf8))))
            }
            return .json(result)
        }
    }
}
