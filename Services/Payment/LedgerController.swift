import Hummingbird
import Logging
import PostgresNIO
import ServiceKit

/// An order's payments and ledger entries, for operators and the consistency checks.
struct LedgerController: Sendable {
    let client: PostgresClient
    let logger: Logger

    struct PaymentView: Codable {
        var sagaId: String
        var status: String
        var amountCents: Int
        var cardLast4: String?
        var reason: String?
    }

    struct LedgerEntry: Codable {
        var sagaId: String
        var kind: String
        var amountCents: Int
        var createdAt: String
    }

    struct OrderPayments: Codable {
        var orderId: String
        var payments: [PaymentView]
        var ledger: [LedgerEntry]
        /// Charges minus refunds.
        var netCents: Int
    }

    func addRoutes<Context: RequestContext>(to router: RouterGroup<Context>) {
        router.get("payments/:orderId") { _, context -> Response in
            let orderId = try context.parameters.require("orderId").lowercased()
            var payments: [PaymentView] = []
            let rows = try await client.query(
                "SELECT saga_id, status, amount_cents, card_last4, reason FROM payments WHERE order_id = \(orderId)",
                logger: logger)
            for try await (sagaId, status, amount, last4, reason) in rows.decode(
                (String, String, Int, String?, String?).self)
            {
                payments.append(
                    PaymentView(sagaId: sagaId, status: status, amountCents: amount, cardLast4: last4, reason: reason))
            }
            var ledger: [LedgerEntry] = []
            let entries = try await client.query(
                """
                SELECT saga_id, kind, amount_cents, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                FROM ledger WHERE order_id = \(orderId) ORDER BY id
                """,
                logger: logger)
            for try await (sagaId, kind, amount, at) in entries.decode((String, String, Int, String).self) {
                ledger.append(LedgerEntry(sagaId: sagaId, kind: kind, amountCents: amount, createdAt: at))
            }
            let net = ledger.reduce(0) { $0 + ($1.kind == "charge" ? $1.amountCents : -$1.amountCents) }
            return .json(OrderPayments(orderId: orderId, payments: payments, ledger: ledger, netCents: net))
        }
    }
}
