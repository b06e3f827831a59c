import AMQP
import Foundation
import Logging
import Persistence
import PostgresNIO
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
                if let written = try await store.apply(.timerFired, sagaId: id, on: connection) {
                    outbox += written
                }
            }
            return (ids.count, outbox)
        }
    }
}
