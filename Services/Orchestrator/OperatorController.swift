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

    struct SagaDetail: Codable {
        var saga: SagaStore.Summary
        var failure: SagaFailure?
        var amountCents: Int?
        var shippingCents: Int?
        var history: [SagaStore.HistoryLine]
        var events: [StatusEvent]
    }

    func addRoutes(to parent: Router<some RequestContext>) {
        let router = parent.group().add(middleware: OperatorAuthMiddleware(credential))
        router.get("sagas") { request, _ -> Response in
            try .json(try await store.summaries(try Self.filter(request.uri.queryParameters), client: client))
        }
        router.get("sagas/counts") { _, _ -> Response in
            try .json(try await store.countsByStatus(client: client))
        }
        router.get("sagas/:id") { _, context -> Response in
            let id = try context.parameters.require("id").lowercased()
            guard let (summary, instance, history) = try await store.detail(id, client: client) else {
                throw HTTPError(.notFound, message: "No saga with id or order id \(id).")
            }
            return try .json(
                SagaDetail(
                    saga: summary, failure: instance?.failure, amountCents: instance?.data.amountCents,
                    shippingCents: instance?.data.shippingCents, history: history,
                    events: try await store.statusEvents(orderId: summary.orderId, client: client)))
        }
        router.post("sagas/:id/retry") { _, context -> Response in
            let id = try context.parameters.require("id").lowercased()
            let (sagaId, outbox): (String, [OutboxEntry]) = try await client.transaction(logger: logger) {
                connection in
                guard let (sagaId, status) = try await store.lock(id, on: connection) else {
                    throw HTTPError(.notFound, message: "No saga with id or order id \(id).")
                }
                guard status == .needsAttention else {
                    throw HTTPError(
                        .conflict,
                        message:
                            "Saga \(sagaId) is \(status.rawValue); only a saga that needs attention can be retried.")
                }
                do {
                    return (sagaId, try await store.apply(.operatorRetry, sagaId: sagaId, on: connection) ?? [])
                } catch let error as DecodingError {
                    let reason = SagaTimerService.describe(error)
                    throw HTTPError(.conflict, message: "Saga \(sagaId) cannot be retried: \(reason); repair it first.")
                }
            }
            relay.send(outbox)
            return try .json(["status": "retrying", "sagaId": sagaId], status: .accepted)
        }
        parent.get("orders/:orderId/events") { request, context -> Response in
            let orderId = try context.parameters.require("orderId").lowercased()
            let orderToken = OperatorCredential.bearerToken(request).map { tokens.verify($0, for: orderId) } ?? false
            guard orderToken || credential.accepts(request) else { throw OperatorCredential.unauthorized }
            return try .json(try await store.statusEvents(orderId: orderId, client: client))
        }
    }

    /// `GET /sagas`' query: `status`, `orderId`, `step`, `olderThan` (seconds), `limit` (100 unless given).
    static func filter(_ parameters: Parameters) throws -> SagaStore.Filter {
        var filter = SagaStore.Filter()
        if let text = parameters.get("status") {
            guard let status = SagaStatus(rawValue: text) else {
                let known = SagaStatus.allCases.map(\.rawValue).joined(separator: ", ")
                throw HTTPError(.badRequest, message: "Unknown status \(text); one of \(known).")
            }
            filter.status = status
        }
        filter.orderId = parameters.get("orderId")?.lowercased()
        filter.step = parameters.get("step")
        for (name, value) in [("orderId", filter.orderId), ("step", filter.step)] {
            if let value,
                value.count > 64 || value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
            {
                throw HTTPError(.badRequest, message: "Invalid \(name).")
            }
        }
        if let text = parameters.get("olderThan") {
            guard let value = Double(text), value.isFinite, (0...31_536_000).contains(value) else {
                throw HTTPError(.badRequest, message: "olderThan must be a number of seconds from 0 to 31536000.")
            }
            filter.olderThanSeconds = value
        }
        if let text = parameters.get("limit") {
            guard let value = Int(text), (1...1_000).contains(value) else {
                throw HTTPError(.badRequest, message: "limit must be a whole number from 1 to 1000.")
            }
            filter.limit = value
        }
        return filter
    }
}
