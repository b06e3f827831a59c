import Foundation
import Hummingbird
import Logging
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

    func addRoutes(to parent: Router<some RequestContext>) {
        let router = parent.group().add(middleware: OperatorAuthMiddleware(credential))
        router.get("stock") { _, _ -> Response in
            try .json(try await store.stock(client))
        }
        router.put("stock/:productId") { request, context -> Response in
            let productId = try context.parameters.require("productId").lowercased()
            var request = request
            let body: RestockBody
            do {
                let bytes = try await request.collectBody(upTo: 4_096)
                body = try JSONDecoder().decode(RestockBody.self, from: Data(buffer: bytes))
            } catch {
                throw HTTPError(.badRequest, message: #"The body must be {"stock": N}, N a whole number of pets."#)
            }
            guard (0...Self.maximumStock).contains(body.stock) else {
                throw HTTPError(.badRequest, message: "stock must be a whole number from 0 to \(Self.maximumStock).")
            }
            guard let restocked = try await store.restock(productId, to: body.stock, client) else {
                throw HTTPError(.notFound, message: "No pet with id \(productId).")
            }
            relay.send(restocked.outbox)
            logger.notice(
                "restocked", metadata: ["productId": "\(productId)", "stock": "\(restocked.level.stock)"])
            return try .json(
                StockStore.ProductStock(
                    productId: restocked.level.productId, title: restocked.title, stock: restocked.level.stock))
        }
        router.get("reservations/:orderId") { _, context -> Response in
            let orderId = try context.parameters.require("orderId").lowercased()
            return try .json(try await store.reservations(orderId: orderId, client))
        }
    }
}
