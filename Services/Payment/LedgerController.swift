import Hummingbird
import PostgresNIO
import ServiceKit

/// An order's payments and ledger entries, for operators and the consistency checks.
struct LedgerController: Sendable {
    let client: PostgresClient
    let ledger: PaymentLedger

    func addRoutes<Context: RequestContext>(to router: RouterGroup<Context>) {
        router.get("payments/:orderId") { _, context -> Response in
            let orderId = try context.parameters.require("orderId").lowercased()
            return try .json(try await ledger.payments(orderId: orderId, client))
        }
    }
}
