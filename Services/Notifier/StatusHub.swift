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
}

/// Routes live status events to the WebSocket sessions of their order. Every Notifier replica has its own queue
/// on the status fan-out, so each sees every event.
actor StatusHub {
    private var sessions: [String: [UUID: AsyncStream<SessionInput>.Continuation]] = [:]
    private let subscribers = Gauge(label: "pets_websocket_subscribers")
    private var count = 0

    func subscribe(_ orderId: String, _ continuation: AsyncStream<SessionInput>.Continuation) -> UUID {
        let id = UUID()
        sessions[orderId, default: [:]][id] = continuation
        count += 1
        subscribers.record(count)
        return id
    }

    func unsubscribe(_ orderId: String, _ id: UUID) {
        if sessions[orderId]?.removeValue(forKey: id) != nil {
            count -= 1
            subscribers.record(count)
        }
        if sessions[orderId]?.isEmpty == true { sessions[orderId] = nil }
    }

    func publish(_ event: StatusEvent) {
        sessions[event.orderId]?.values.forEach { $0.yield(.event(event)) }
    }

    func resyncAll() {
        for order in sessions.values {
            for continuation in order.values { continuation.yield(.resync) }
        }
    }
}
