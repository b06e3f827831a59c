import Logging
import Persistence
import Reliability
import ServiceKit
import ServiceLifecycle

/// Finds orders whose saga never began and gets them going again or ends them (see `UnstartedOrders`), so no order
/// stays `placed` because its start was dead-lettered.
struct UnstartedOrderSweeper: Service {
    let orders: UnstartedOrders
    let relay: OutboxRelay
    let schemaReady: ReadinessGate
    let logger: Logger

    /// A quarter of the deadline, within 0.2-5 s: an overdue order waits at most that much longer.
    var interval: Duration {
        .milliseconds(Int(min(max(orders.deadline / 4, 0.2), 5) * 1000))
    }

    func run() async throws {
        await schemaReady.wait()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let (handled, outbox) = try await withDeadline(seconds: 30) { try await orders.sweep() }
                relay.send(outbox)
                if handled == UnstartedOrders.batchSize { continue }
            } catch {
                logger.warning("unstarted order sweep failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            try? await Task.sleep(for: interval)
        }
    }
}
