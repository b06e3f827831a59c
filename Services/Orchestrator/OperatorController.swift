import Foundation
import Hummingbird
import Logging
import Messaging
import Persistence
import PostgresNIO
import SagaEngine
import ServiceKit

/// The operator API behind the saga monitor: list and search sagas, one saga's timeline, an order's status events
/// (the Notifier's replay source), and retrying a parked saga. Every route needs the operator credential; an
/// order's events are also given for that order's WebSocket token (how the Notifier replays them).
struct OperatorController: Sendable {
    let client: PostgresClient
    let store: SagaStore
    let relay: OutboxRelay
    let credential: OperatorCredential
    let tokens: OrderToken
    let logger: Logger

    struct SagaSummary: Codable {
        var sagaId: String
        var orderId: String
        var status: String
        var phase: String
        var step: String?
        var attempt: Int
        var createdAt: String
        var updatedAt: String
        var ageSeconds: Double
    }

    struct HistoryLine: Codable {
        var at: String
        var step: String
        var kind: String
        var attempt: Int
        var detail: String?
        var durationMs: Int?
    }

    struct SagaDetail: Codable {
        var saga: SagaSummary
        var failure: SagaFailure?
        var amountCents: Int?
        var shippingCents: Int?
        var history: [HistoryLine]
        var events: [StatusEvent]
    }

    private static let summaryColumns = """
        id, order_id, status, phase, step, attempt,
        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        extract(epoch FROM now() - updated_at)::float8
        """

    func addRoutes(to parent: Router<some RequestContext>) {
        let router = parent.group().add(middleware: OperatorAuthMiddleware(credential))
        router.get("sagas") { request, _ -> Response in
            let parameters = request.uri.queryParameters
            let status = parameters.get("status")
            let orderId = parameters.get("orderId")?.lowercased()
            let step = parameters.get("step")
            if let status, SagaStatus(rawValue: status) == nil {
                let known = SagaStatus.allCases.map(\.rawValue).joined(separator: ", ")
                return .json(FailureBody(message: "Unknown status \(status); one of \(known)."), status: .badRequest)
            }
            for (name, value) in [("orderId", orderId), ("step", step)] {
                if let value,
                    value.count > 64
                        || value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
                {
                    return .json(FailureBody(message: "Invalid \(name)."), status: .badRequest)
                }
            }
            var olderThan = 0.0
            if let text = parameters.get("olderThan") {
                guard let value = Double(text), value.isFinite, (0...31_536_000).contains(value) else {
                    return .json(
                        FailureBody(message: "olderThan must be a number of seconds from 0 to 31536000."),
                        status: .badRequest)
                }
                olderThan = value
            }
            var limit = 100
            if let text = parameters.get("limit") {
                guard let value = Int(text), (1...1_000).contains(value) else {
                    return .json(
                        FailureBody(message: "limit must be a whole number from 1 to 1000."), status: .badRequest)
                }
                limit = value
            }
            var query = PostgresQuery(unsafeSQL: "SELECT \(Self.summaryColumns) FROM sagas")
            var bindings = PostgresBindings()
            var conditions: [String] = []
            if let status { bindings.append(status); conditions.append("status = $\(bindings.count)") }
            if let orderId { bindings.append(orderId); conditions.append("order_id = $\(bindings.count)") }
            if let step { bindings.append(step); conditions.append("step = $\(bindings.count)") }
            if olderThan > 0 {
                bindings.append(olderThan);
                conditions.append("updated_at < now() - make_interval(secs => $\(bindings.count))")
            }
            let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
            bindings.append(limit)
            query = PostgresQuery(
                unsafeSQL:
                    "SELECT \(Self.summaryColumns) FROM sagas\(whereClause) ORDER BY created_at DESC LIMIT $\(bindings.count)",
                binds: bindings)
            return .json(try await summaries(query))
        }
        router.get("sagas/counts") { _, _ -> Response in
            var counts: [String: Int] = Dictionary(uniqueKeysWithValues: SagaStatus.allCases.map { ($0.rawValue, 0) })
            let rows = try await client.query("SELECT status, count(*)::int FROM sagas GROUP BY status", logger: logger)
            for try await (status, count) in rows.decode((String, Int).self) { counts[status] = count }
            return .json(counts)
        }
        router.get("sagas/:id") { _, context -> Response in
            let id = try context.parameters.require("id").lowercased()
            guard let detail = try await detail(id) else {
                return .json(FailureBody(message: "No saga with id or order id \(id)."), status: .notFound)
            }
            return .json(detail)
        }
        router.post("sagas/:id/retry") { _, context -> Response in
            let id = try context.parameters.require("id").lowercased()
            let (result, outbox): (Response, [OutboxEntry]) = try await client.transaction(logger: logger) {
                connection in
                let rows = try await connection.query(
                    "SELECT id, status FROM sagas WHERE id = \(id) OR order_id = \(id) FOR UPDATE", logger: logger)
                var found: (String, String)?
                for try await row in rows.decode((String, String).self) { found = row }
                guard let (sagaId, status) = found else {
                    return (.json(FailureBody(message: "No saga with id or order id \(id)."), status: .notFound), [])
                }
                guard status == SagaStatus.needsAttention.rawValue else {
                    return (
                        .json(
                            FailureBody(
                                message: "Saga \(sagaId) is \(status); only a saga that needs attention can be retried."
                            ),
                            status: .conflict), []
                    )
                }
                let outbox: [OutboxEntry]
                do {
                    outbox = try await store.apply(.operatorRetry, sagaId: sagaId, on: connection) ?? []
                } catch let error as DecodingError {
                    let reason = SagaTimerService.describe(error)
                    return (
                        .json(
                            FailureBody(message: "Saga \(sagaId) cannot be retried: \(reason); repair it first."),
                            status: .conflict), []
                    )
                }
                return (.json(["status": "retrying", "sagaId": sagaId], status: .accepted), outbox)
            }
            relay.send(outbox)
            return result
        }
        parent.get("orders/:orderId/events") { request, context -> Response in
            let orderId = try context.parameters.require("orderId").lowercased()
            let orderToken = OperatorCredential.bearerToken(request).map { tokens.verify($0, for: orderId) } ?? false
            guard orderToken || credential.accepts(request) else { return OperatorCredential.unauthorized() }
            return .json(try await events(orderId))
        }
    }

    private func summaries(_ query: PostgresQuery) async throws -> [SagaSummary] {
        var result: [SagaSummary] = []
        let rows = try await client.query(query, logger: logger)
        for try await (id, orderId, status, phase, step, attempt, created, updated, age)
            in rows.decode((String, String, String, String, String?, Int, String, String, Double).self)
        {
            result.append(
                SagaSummary(
                    sagaId: id, orderId: orderId, status: status, phase: phase, step: step, attempt: attempt,
                    createdAt: created, updatedAt: updated, ageSeconds: age))
        }
        return result
    }

    private func detail(_ id: String) async throws -> SagaDetail? {
        var bindings = PostgresBindings()
        bindings.append(id)
        let query = PostgresQuery(
            unsafeSQL: "SELECT \(Self.summaryColumns) FROM sagas WHERE id = $1 OR order_id = $1", binds: bindings)
        guard let summary = try await summaries(query).first else { return nil }
        var instance: SagaInstance<PlaceOrderData>?
        for try await json in try await client.query(
            "SELECT instance::text FROM sagas WHERE id = \(summary.sagaId)", logger: logger
        )
        .decode(String.self) {
            // A saga parked because its instance does not load still shows its timeline (which says why).
            instance = try? SagaStore.decode(json)
        }
        var history: [HistoryLine] = []
        let rows = try await client.query(
            """
            SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), step, kind, attempt, detail, duration_ms
            FROM saga_history WHERE saga_id = \(summary.sagaId) ORDER BY id
            """,
            logger: logger)
        for try await (at, step, kind, attempt, detail, duration) in rows.decode(
            (String, String, String, Int, String?, Int?).self)
        {
            history.append(
                HistoryLine(at: at, step: step, kind: kind, attempt: attempt, detail: detail, durationMs: duration))
        }
        return SagaDetail(
            saga: summary, failure: instance?.failure, amountCents: instance?.data.amountCents,
            shippingCents: instance?.data.shippingCents, history: history, events: try await events(summary.orderId))
    }

    private func events(_ orderId: String) async throws -> [StatusEvent] {
        var result: [StatusEvent] = []
        let rows = try await client.query(
            "SELECT body::text FROM saga_events WHERE order_id = \(orderId) ORDER BY seq", logger: logger)
        for try await body in rows.decode(String.self) {
            result.append(try MessageCodec.decode(StatusEvent.self, from: Array(body.utf8)))
        }
        return result
    }
}
