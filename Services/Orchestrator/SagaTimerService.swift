import AMQP
import Foundation
import Logging
import Persistence
import PostgresNIO
import Reliability
import SagaEngine
import ServiceKit
import ServiceLifecycle

/// Fires due timers (reply deadlines and retry pauses) from the `sagas` table. The timers live in the database, so
/// a restarted orchestrator picks up every deadline where it was; `SKIP LOCKED` lets replicas share the work.
struct SagaTimerService: Service {
    let client: PostgresClient
    let store: SagaStore
    let relay: OutboxRelay
    let schemaReady: ReadinessGate
    let logger: Logger
    var interval: Duration = .milliseconds(200)

    func run() async throws {
        await schemaReady.wait()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let (fired, outbox) = try await withDeadline(seconds: 30) { try await fireDue() }
                relay.send(outbox)
                if fired == 50 { continue }
            } catch {
                logger.warning("saga timer scan failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Fires up to 50 due timers in one transaction, each saga behind a savepoint: a saga that cannot be fired (its
    /// stored instance does not load, or its update is refused) is rolled back alone and parked as
    /// `needs_attention` with the reason, instead of rolling back the batch and sorting first again at every scan.
    /// A transient error (the connection, a deadlock) still fails the whole scan, to be tried again.
    private func fireDue() async throws -> (Int, [OutboxEntry]) {
        try await client.transaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                SELECT id FROM sagas WHERE timer_at IS NOT NULL AND timer_at <= now()
                ORDER BY timer_at LIMIT 50 FOR UPDATE SKIP LOCKED
                """,
                logger: logger)
            var ids: [String] = []
            for try await id in rows.decode(String.self) { ids.append(id) }
            var outbox: [OutboxEntry] = []
            for id in ids {
                try await connection.query("SAVEPOINT pets_timer_saga", logger: logger)
                do {
                    if let written = try await store.apply(.timerFired, sagaId: id, on: connection) {
                        outbox += written
                    }
                    try await connection.query("RELEASE SAVEPOINT pets_timer_saga", logger: logger)
                } catch  where !DatabaseErrors.isTransient(error) && !(error is DeadlineExceeded) {
                    try await connection.query("ROLLBACK TO SAVEPOINT pets_timer_saga", logger: logger)
                    let reason = "its timer could not fire: \(Self.describe(error))"
                    logger.error("parking a saga", metadata: ["sagaId": "\(id)", "reason": "\(reason)"])
                    outbox += try await store.park(sagaId: id, reason: reason, on: connection)
                }
            }
            return (ids.count, outbox)
        }
    }

    /// What went wrong, for the saga's history: a decoding error names the field, a database error its message.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as DecodingError:
            switch error {
            case .dataCorrupted(let context), .keyNotFound(_, let context), .typeMismatch(_, let context),
                .valueNotFound(_, let context):
                let path = context.codingPath.map(\.stringValue).joined(separator: ".")
                let at = path.isEmpty ? "" : path + ": "
                return "the stored instance does not load (\(at)\(context.debugDescription))"
            @unknown default:
                return "the stored instance does not load (\(error))"
            }
        case let error as PSQLError:
            return "the database refused it (\(error.serverInfo?[.message] ?? String(reflecting: error)))"
        default:
            return String(describing: error)
        }
    }
}
