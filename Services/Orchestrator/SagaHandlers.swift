import AMQP
import Messaging
import PostgresNIO
import SagaEngine
import ServiceKit

/// The orchestrator's message handlers: a start request and a participant's reply.
struct SagaHandlers: Sendable {
    let store: SagaStore

    var startPlaceOrder: OutboxWritingHandler {
        { [store] delivery, connection in
            guard delivery.message.type == MessageTypes.startPlaceOrder else {
                throw MalformedMessage(
                    "orchestrator.commands takes \(MessageTypes.startPlaceOrder), got '\(delivery.message.type)'")
            }
            let request = try MessageCodec.decode(StartPlaceOrder.self, from: delivery.message.body)
            return try await store.start(request, traceHeaders: delivery.message.traceHeaders, on: connection)
        }
    }

    var reply: OutboxWritingHandler {
        { [store] delivery, connection in
            guard delivery.message.type == MessageTypes.reply else {
                throw MalformedMessage("orchestrator.replies takes replies, got '\(delivery.message.type)'")
            }
            let reply = try MessageCodec.decode(StepReply.self, from: delivery.message.body)
            guard
                let outgoing = try await store.apply(
                    .reply(reply), sagaId: reply.sagaId, traceHeaders: delivery.message.traceHeaders, on: connection)
            else {
                throw MalformedMessage("reply for unknown saga \(reply.sagaId)")
            }
            return outgoing
        }
    }
}

extension AMQPMessage {
    /// The W3C trace context headers to pass along.
    var traceHeaders: [String: String] {
        headers.filter { $0.key == "traceparent" || $0.key == "tracestate" }
    }
}
