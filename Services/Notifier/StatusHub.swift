import Foundation
import Messaging
import Metrics

/// What a WebSocket session reacts to.
enum SessionInput: Sendable {
    /// A live status event from the broker.
    case event(StatusEvent)
    /// The broker connection was re-established: events may have been missed, fetch the history again.
    case resync
    /// The client asked for the latest status.
    case query
    /// A timer the session set went off: fetch again if it still misses events.
    case retry
}

/// Routes live status events to the WebSocket sessions of their order, and keeps the recent orders' events so that
/// a new session needs no fetch from the Orchestrator in the common case (a client that connects as soon as it
/// placed its order). Every Notifier replica has its own queue on the status fan-out, so each sees every event.
actor StatusHub {
    private var sessions: [String: [UUID: AsyncStream<SessionInput>.Continuation]] = [:]
    private let subscribers = Gauge(label: "pets_websocket_subscribers")
    private let fetched = Counter(label: "pets_history_fetches_total")
    private let fetchFailures = Counter(label: "pets_history_fetch_failures_total")
    private var count = 0
    private let history: EventHistory
    /// Events of recent orders by order, in `seq` order; the oldest orders are forgotten first.
    private var recent: [String: [StatusEvent]] = [:]
    private var recentOrders: [String] = []
    private var recentHead = 0
    private let cachedOrders: Int
    /// Fetches in flight, shared by every session of the order.
    private var fetches: [String: Task<[StatusEvent], Error>] = [:]

    init(history: EventHistory, cachedOrders: Int = 2_000) {
        self.history = history
        self.cachedOrders = cachedOrders
    }

    /// Registers a session and returns the events of its order known here so far.
    func subscribe(_ orderId: String, _ continuation: AsyncStream<SessionInput>.Continuation) -> (UUID, [StatusEvent]) {
        let id = UUID()
        sessions[orderId, default: [:]][id] = continuation
        count += 1
        subscribers.record(count)
        return (id, recent[orderId] ?? [])
    }

    func unsubscribe(_ orderId: String, _ id: UUID) {
        if sessions[orderId]?.removeValue(forKey: id) != nil {
            count -= 1
            subscribers.record(count)
        }
        if sessions[orderId]?.isEmpty == true { sessions[orderId] = nil }
    }

    func publish(_ events: [StatusEvent]) {
        remember(events)
        for event in events {
            sessions[event.orderId]?.values.forEach { $0.yield(.event(event)) }
        }
    }

    func resyncAll() {
        for order in sessions.values {
            for continuation in order.values { continuation.yield(.resync) }
        }
    }

    /// The events known here for an order.
    func cached(_ orderId: String) -> [StatusEvent] { recent[orderId] ?? [] }

    /// The order's recorded events from the Orchestrator: one request at a time per order, whatever the number of
    /// sessions asking; what it returns is kept for the next session.
    func fetch(_ orderId: String) async throws -> [StatusEvent] {
        let task: Task<[StatusEvent], Error>
        if let running = fetches[orderId] {
            task = running
        } else {
            let history = self.history
            task = Task { try await history.events(for: orderId) }
            fetches[orderId] = task
            fetched.increment()
        }
        do {
            let events = try await task.value
            fetches[orderId] = nil
            remember(events)
            return events
        } catch {
            fetches[orderId] = nil
            fetchFailures.increment()
            throw error
        }
    }

    private func remember(_ events: [StatusEvent]) {
        for event in events {
            if var known = recent[event.orderId] {
                guard !known.contains(where: { $0.seq == event.seq }) else { continue }
                known.append(event)
                if known.count > 1 && known[known.count - 2].seq > event.seq { known.sort { $0.seq < $1.seq } }
                recent[event.orderId] = known
            } else {
                recent[event.orderId] = [event]
                recentOrders.append(event.orderId)
                forgetOldest()
            }
        }
    }

    private func forgetOldest() {
        while recentOrders.count - recentHead > cachedOrders {
            recent[recentOrders[recentHead]] = nil
            recentHead += 1
        }
        if recentHead > cachedOrders {
            recentOrders.removeFirst(recentHead)
            recentHead = 0
        }
    }
}
