import Hummingbird
import Logging
import Messaging
import PostgresNIO
import ServiceKit

/// Read-only views for operators and the consistency checks: stock on hand and an order's reservation.
struct StockController: Sendable {
    let client: PostgresClient
    let logger: Logger

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

    func addRoutes(to router: Router<some RequestContext>) {
        router.get("stock") { _, _ -> Response in
            var result: [ProductStock] = []
            let rows = try await client.query("SELECT id, title, stock FROM products ORDER BY title", logger: logger)
            for try await (id, title, stock) in rows.decode((String, String, Int).self) {
                result.append(ProductStock(productId: id, title: title, stock: stock))
            }
            return .json(result)
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
