import Foundation
import Logging
import Messaging
import Persistence
import PostgresNIO
import ServiceKit

/// Charges and refunds, each exactly once per saga however often the command arrives.
struct PaymentLedger: Sendable {
    let logger: Logger
    var now: @Sendable () -> Date = { Date() }

    @Sendable
    func processPayment(_ command: SagaCommand<ProcessPayment>, _ connection: PostgresConnection, _ logger: Logger)
        async throws -> StepOutcome
    {
        let payment = command.payload
        let valid = CardCheck.isValid(expiry: payment.card.expiry, now: now()) && payment.amountCents > 0
        // The common case in one statement: a new payment, charged (with its ledger line) or declined.
        let status: Payment
        if let first = try await charge(command, valid: valid, connection) {
            status = first
        } else {
            // The saga has a payment already (this is a repeat, or a refund came first): lock it and look.
            status = try await claim(
                command, status: .pending, amountCents: payment.amountCents, last4: payment.card.last4, connection)
        }
        switch status.status {
        case .charged: return .succeeded()
        case .declined: return .failed("InvalidCreditCard", status.reason ?? FailureMessages.invalidCreditCard)
        case .refunded, .voided: return .failed("PaymentVoided", "Error, the payment was already refunded")
        case .pending: break
        }
        guard valid else {
            logger.info(
                "card declined", metadata: ["last4": "\(payment.card.last4)", "expiry": "\(payment.card.expiry)"])
            try await connection.query(
                """
                UPDATE payments SET status = \(PaymentStatus.declined), reason = \(FailureMessages.invalidCreditCard), updated_at = now()
                WHERE saga_id = \(command.sagaId)
                """,
                logger: logger)
            return .failed("InvalidCreditCard", FailureMessages.invalidCreditCard)
        }
        try await settle(command, as: .charged, ledger: .charge, amountCents: payment.amountCents, connection)
        return .succeeded()
    }

    /// Inserts the saga's payment as charged (with its ledger line) or declined, unless the saga has one; returns
    /// the new payment, or nil when there was one already.
    private func charge(_ command: SagaCommand<ProcessPayment>, valid: Bool, _ connection: PostgresConnection)
        async throws -> Payment?
    {
        let payment = command.payload
        let rows = try await connection.execute(
            ChargeStatement(
                sagaId: command.sagaId, orderId: command.orderId, valid: valid, amountCents: payment.amountCents,
                last4: payment.card.last4),
            logger: logger)
        var inserted: Payment?
        for try await (status, reason, amount) in rows {
            inserted = Payment(status: status, reason: reason, amountCents: amount)
        }
        if inserted?.status == .declined {
            logger.info(
                "card declined", metadata: ["last4": "\(payment.card.last4)", "expiry": "\(payment.card.expiry)"])
        }
        return inserted
    }

    /// `charge`'s statement, prepared once per connection.
    struct ChargeStatement: QueryStatement {
        static let name = "pets_payment_charge"
        static let sql = ChargeStatement(sagaId: "", orderId: "", valid: true, amountCents: 0, last4: "").query.sql
        typealias Row = (PaymentStatus, String?, Int)
        let query: PostgresQuery

        init(sagaId: String, orderId: String, valid: Bool, amountCents: Int, last4: String) {
            let reason: String? = valid ? nil : FailureMessages.invalidCreditCard
            query = """
                WITH new AS (
                    INSERT INTO payments (saga_id, order_id, status, reason, amount_cents, card_last4)
                    VALUES (\(sagaId), \(orderId), \(valid ? PaymentStatus.charged : .declined), \(reason), \(amountCents),
                            \(last4))
                    ON CONFLICT (saga_id) DO NOTHING RETURNING status, reason, amount_cents
                ), ledger AS (
                    INSERT INTO ledger (saga_id, order_id, kind, amount_cents)
                    SELECT \(sagaId), \(orderId), \(LedgerKind.charge), amount_cents FROM new
                    WHERE status = \(PaymentStatus.charged)
                )
                SELECT status, reason, amount_cents FROM new
                """
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    @Sendable
    func refundPayment(_ command: SagaCommand<RefundPayment>, _ connection: PostgresConnection, _ logger: Logger)
        async throws -> StepOutcome
    {
        // Nothing charged yet: the `voided` tombstone makes a late charge fail instead of taking money.
        let status = try await claim(command, status: .voided, amountCents: 0, last4: nil, connection)
        switch status.status {
        case .charged:
            try await settle(command, as: .refunded, ledger: .refund, amountCents: status.amountCents, connection)
        case .pending, .declined:
            try await connection.query(
                "UPDATE payments SET status = \(PaymentStatus.voided), updated_at = now() WHERE saga_id = \(command.sagaId)",
                logger: logger)
        case .refunded, .voided:
            break
        }
        return .succeeded()
    }

    private struct Payment {
        var status: PaymentStatus
        var reason: String?
        var amountCents: Int
    }

    /// Sets the saga's payment to `status` and writes its ledger line, in one statement.
    private func settle<Payload>(
        _ command: SagaCommand<Payload>, as status: PaymentStatus, ledger kind: LedgerKind, amountCents: Int,
        _ connection: PostgresConnection
    ) async throws {
        try await connection.query(
            """
            WITH settled AS (
                UPDATE payments SET status = \(status), updated_at = now() WHERE saga_id = \(command.sagaId)
            )
            INSERT INTO ledger (saga_id, order_id, kind, amount_cents)
            VALUES (\(command.sagaId), \(command.orderId), \(kind), \(amountCents))
            """,
            logger: logger)
    }

    /// Inserts the saga's payment row with `status` unless one exists, and returns it, locked either way (the
    /// no-op update of an existing row takes its lock). One statement.
    private func claim<Payload>(
        _ command: SagaCommand<Payload>, status: PaymentStatus, amountCents: Int, last4: String?,
        _ connection: PostgresConnection
    ) async throws -> Payment {
        let rows = try await connection.query(
            """
            INSERT INTO payments (saga_id, order_id, status, amount_cents, card_last4)
            VALUES (\(command.sagaId), \(command.orderId), \(status), \(amountCents), \(last4))
            ON CONFLICT (saga_id) DO UPDATE SET saga_id = EXCLUDED.saga_id
            RETURNING status, reason, amount_cents
            """,
            logger: logger)
        for try await (status, reason, amount) in rows.decode((PaymentStatus, String?, Int).self) {
            return Payment(status: status, reason: reason, amountCents: amount)
        }
        throw MalformedMessage("payment row for saga \(command.sagaId) vanished")
    }
}

/// The seed's card rule: the expiry is `MM/YY`, the month is 1-12, and the card is valid through that month.
enum CardCheck {
    static func isValid(expiry: String, now: Date) -> Bool {
        let parts = expiry.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let month = Int(parts[0]), let year = Int(parts[1]), (1...12).contains(month),
            parts[0].count == 2, parts[1].count == 2
        else { return false }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let today = calendar.dateComponents([.year, .month], from: now)
        let expiryYear = 2000 + year
        return (expiryYear, month) >= (today.year!, today.month!)
    }
}

// MARK: The operator's view (`LedgerController`)

extension PaymentLedger {
    /// A saga's payment row.
    struct PaymentView: Codable, Sendable {
        var sagaId: String
        var status: PaymentStatus
        var amountCents: Int
        var cardLast4: String?
        var reason: String?
    }

    /// A line of the append-only money ledger.
    struct LedgerEntry: Codable, Sendable {
        var sagaId: String
        var kind: LedgerKind
        var amountCents: Int
        var createdAt: String
    }

    /// An order's payments and ledger lines, and what it was charged in the end.
    struct OrderPayments: Codable, Sendable {
        var orderId: String
        var payments: [PaymentView]
        var ledger: [LedgerEntry]
        /// Charges minus refunds.
        var netCents: Int
    }

    func payments(orderId: String, _ client: PostgresClient) async throws -> OrderPayments {
        var payments: [PaymentView] = []
        let rows = try await client.query(
            "SELECT saga_id, status, amount_cents, card_last4, reason FROM payments WHERE order_id = \(orderId)",
            logger: logger)
        for try await (sagaId, status, amount, last4, reason) in rows.decode(
            (String, PaymentStatus, Int, String?, String?).self)
        {
            payments.append(
                PaymentView(sagaId: sagaId, status: status, amountCents: amount, cardLast4: last4, reason: reason))
        }
        var ledger: [LedgerEntry] = []
        let entries = try await client.query(
            """
            SELECT saga_id, kind, amount_cents, \(unescaped: Timestamp.sql("created_at"))
            FROM ledger WHERE order_id = \(orderId) ORDER BY id
            """,
            logger: logger)
        for try await (sagaId, kind, amount, at) in entries.decode((String, LedgerKind, Int, String).self) {
            ledger.append(LedgerEntry(sagaId: sagaId, kind: kind, amountCents: amount, createdAt: at))
        }
        let net = ledger.reduce(0) { $0 + ($1.kind == .charge ? $1.amountCents : -$1.amountCents) }
        return OrderPayments(orderId: orderId, payments: payments, ledger: ledger, netCents: net)
    }
}

/// Where a saga's payment stands (`payments.status`, whose CHECK lists the same values).
enum PaymentStatus: String, TextColumnEnum {
    /// Being decided: the row is claimed, the card not yet checked.
    case pending
    case charged
    case declined
    case refunded
    /// Refunded before anything was charged: a tombstone, so that a late charge fails instead of taking money.
    case voided
}

/// A line of the money ledger (`ledger.kind`).
enum LedgerKind: String, TextColumnEnum {
    case charge, refund
}
