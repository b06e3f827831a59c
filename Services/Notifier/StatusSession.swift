import Foundation
import HummingbirdWebSocket
import Logging
import Messaging
import NIOCore
import Persistence

/// One WebSocket client watching one order: first every event recorded so far, then each new one, in `seq` order
/// without gaps or repeats. A gap in the live stream, or a broker reconnect, triggers a fresh fetch of the history.
struct StatusSession: Sendable {
    let orderId: String
    let hub: StatusHub
    let history: EventHistory
    let logger: Logger
    static let maximumClientMessage = 4 * 1024

    func run(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let (inputs, continuation) = AsyncStream.makeStream(
            of: SessionInput.self, bufferingPolicy: .bufferingNewest(256))
        let subscription = await hub.subscribe(orderId, continuation)
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
                var sent: [StatusEvent] = []
                try await sendMissing(&sent, outbound: outbound)
                for await input in inputs {
                    switch input {
                    case .event(let event):
                        if event.seq == (sent.last?.seq ?? 0) + 1 {
                            try await send(event, &sent, outbound: outbound)
                        } else if event.seq > (sent.last?.seq ?? 0) {
                            try await sendMissing(&sent, outbound: outbound)
                        }
                    case .resync:
                        try await sendMissing(&sent, outbound: outbound)
                    case .query:
                        if sent.isEmpty { try await sendMissing(&sent, outbound: outbound) }
                        if let latest = sent.last { try await write(latest, outbound: outbound) }
                    }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Sends the recorded events the client has not had yet.
    private func sendMissing(_ sent: inout [StatusEvent], outbound: WebSocketOutboundWriter) async throws {
        let recorded: [StatusEvent]
        do {
            recorded = try await history.events(for: orderId)
        } catch {
            logger.warning(
                "cannot fetch the order's history", metadata: ["orderId": "\(orderId)", "error": "\(error)"])
            return
        }
        for event in recorded.sorted(by: { $0.seq < $1.seq }) where event.seq == (sent.last?.seq ?? 0) + 1 {
            try await send(event, &sent, outbound: outbound)
        }
    }

    private func send(_ event: StatusEvent, _ sent: inout [StatusEvent], outbound: WebSocketOutboundWriter) async throws
    {
        try await write(event, outbound: outbound)
        sent.append(event)
    }

    /// How long one message may wait for a client that does not read before that client is dropped.
    static let writeDeadline = 10.0

    private func write(_ event: StatusEvent, outbound: WebSocketOutboundWriter) async throws {
        let text = String(decoding: try MessageCodec.encode(event), as: UTF8.self)
        // Bounded: a client that stops reading fills its socket buffer; rather than wait on it forever, it is
        // dropped, and nobody else waits on it meanwhile (each session writes on its own).
        try await withDeadline(seconds: Self.writeDeadline) { try await outbound.write(.text(text)) }
    }
}
