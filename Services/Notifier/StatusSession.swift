import Foundation
import HummingbirdWebSocket
import Logging
import Messaging
import NIOCore
import Reliability

/// One WebSocket client watching one order: first every event recorded so far, then each new one, in `seq` order
/// without gaps or repeats. The hub's recent events serve a new session; a gap the hub cannot fill, a broker
/// reconnect, or an order the hub has no events of after a moment, trigger a fetch of the history from the
/// Orchestrator, retried with backoff until it succeeds.
struct StatusSession: Sendable {
    let orderId: String
    let hub: StatusHub
    let logger: Logger
    static let maximumClientMessage = 4 * 1024

    /// How long a session with no event of its order waits for the first live one before it asks the
    /// Orchestrator: a new order's first event is on its way; an older one's were recorded before this replica
    /// knew of them.
    static let firstEventGrace = 1.0
    /// Pause before the next fetch after a failed one; doubles up to `maximumRetryInterval`.
    static let firstRetryInterval = 0.2
    static let maximumRetryInterval = 5.0

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let (inputs, continuation) = AsyncStream.makeStream(
            of: SessionInput.self, bufferingPolicy: .bufferingNewest(256))
        let (subscription, known) = await hub.subscribe(orderId, continuation)
        defer { Task { [hub, orderId] in await hub.unsubscribe(orderId, subscription) } }

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // Client messages: `{"orderId": ...}` asks for the latest status; anything else is ignored. A
                // message over the limit throws here, and that error (not the other task's end) closes the
                // connection, with 1009. A client that closes ends the outbound side too.
                for try await message in inbound.messages(maxSize: Self.maximumClientMessage) {
                    guard case .text(let text) = message,
                        let request = try? JSONDecoder().decode([String: String].self, from: Data(text.utf8)),
                        request["orderId"]?.lowercased() == orderId
                    else { continue }
                    continuation.yield(.query)
                }
                continuation.finish()
            }
            group.addTask {
                var progress = Progress(outbound: outbound, continuation: continuation)
                try await progress.send(contiguousFrom: known)
                if progress.sent.isEmpty {
                    if known.isEmpty {
                        progress.schedule(.retry, after: Self.firstEventGrace)
                        progress.missing = true
                    } else {
                        try await progress.fetch(self)
                    }
                }
                for await input in inputs {
                    switch input {
                    case .event(let event):
                        if event.seq == progress.lastSeq + 1 {
                            try await progress.send(event)
                        } else if event.seq > progress.lastSeq {
                            // A gap: the hub may hold the events in between; if not, the Orchestrator does.
                            try await progress.send(contiguousFrom: await hub.cached(orderId))
                            if event.seq > progress.lastSeq + 1 { try await progress.fetch(self) }
                        }
                    case .resync:
                        try await progress.fetch(self)
                    case .retry:
                        guard progress.missing else { break }
                        // Another session of the order may have fetched its events meanwhile: no second request.
                        if progress.sent.isEmpty {
                            try await progress.send(contiguousFrom: await hub.cached(orderId))
                        }
                        if progress.sent.isEmpty || progress.failedFetch {
                            try await progress.fetch(self)
                        } else {
                            progress.missing = false
                        }
                    case .query:
                        if progress.sent.isEmpty { try await progress.fetch(self) }
                        if let latest = progress.sent.last { try await write(latest, outbound: outbound) }
                    }
                }
                progress.cancelTimer()
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// What one session has sent, and whether it still misses events it must fetch.
    private struct Progress {
        let outbound: WebSocketOutboundWriter
        let continuation: AsyncStream<SessionInput>.Continuation
        var sent: [StatusEvent] = []
        /// Set while events may be missing and the last fetch (or none yet) did not settle that.
        var missing = false
        /// Set when the last fetch failed: the next retry must ask the Orchestrator again.
        var failedFetch = false
        var retryInterval = StatusSession.firstRetryInterval
        var timer: Task<Void, Never>?

        var lastSeq: Int { sent.last?.seq ?? 0 }

        mutating func send(_ event: StatusEvent) async throws {
            try await StatusSession.writeEvent(event, outbound: outbound)
            sent.append(event)
        }

        /// Sends the events that continue the stream without a gap.
        mutating func send(contiguousFrom events: [StatusEvent]) async throws {
            for event in events.sorted(by: { $0.seq < $1.seq }) where event.seq == lastSeq + 1 {
                try await send(event)
            }
        }

        /// Fetches the recorded events and sends what the client has not had; on failure, tries again later with
        /// backoff, for as long as the session is open, so a session is never left with a gap.
        mutating func fetch(_ session: StatusSession) async throws {
            do {
                try await send(contiguousFrom: try await session.hub.fetch(session.orderId))
                missing = false
                failedFetch = false
                retryInterval = StatusSession.firstRetryInterval
            } catch {
                session.logger.warning(
                    "cannot fetch the order's history; retrying",
                    metadata: ["error": "\(error)", "retryIn": "\(retryInterval)s"])
                missing = true
                failedFetch = true
                schedule(.retry, after: retryInterval)
                retryInterval = min(retryInterval * 2, StatusSession.maximumRetryInterval)
            }
        }

        mutating func schedule(_ input: SessionInput, after seconds: Double) {
            timer?.cancel()
            timer = Task { [continuation] in
                try? await Task.sleep(for: .seconds(seconds))
                if !Task.isCancelled { continuation.yield(input) }
            }
        }

        func cancelTimer() { timer?.cancel() }
    }

    /// How long one message may wait for a client that does not read before that client is dropped.
    static let writeDeadline = 10.0

    private func write(_ event: StatusEvent, outbound: WebSocketOutboundWriter) async throws {
        try await Self.writeEvent(event, outbound: outbound)
    }

    fileprivate static func writeEvent(_ event: StatusEvent, outbound: WebSocketOutboundWriter) async throws {
        let text = String(decoding: try MessageCodec.encode(event), as: UTF8.self)
        // Bounded: a client that stops reading fills its socket buffer; rather than wait on it forever, it is
        // dropped, and nobody else waits on it meanwhile (each session writes on its own).
        try await withDeadline(seconds: Self.writeDeadline) { try await outbound.write(.text(text)) }
    }
}
