import AMQP
import Messaging
import Persistence
import PostgresNIO
import Reliability
import SagaEngine
import ServiceKit

/// The orchestrator's message handlers: a start request and a participant's reply.
struct SagaHandlers: Sendable {
    let store: SagaStore

    /// `orchestrator.commands`: a start request, or the Order service giving up on a start that never arrived.
    var startPlaceOrder: OutboxWritingHandler {
        { [store] delivery, connection, claim in
            let type = delivery.message.type
            if FaultInjection.isActive(.reject, type) {
                throw MalformedMessage("fault injection: rejecting \(type) \(delivery.message.messageID)")
            }
            switch type {
            case MessageTypes.startPlaceOrder:
                let request = try MessageCodec.decode(StartPlaceOrder.self, from: delivery.message.body)
                return try await store.start(
                    request, traceHeaders: delivery.message.traceHeaders, claiming: claim, on: connection)
            case MessageTypes.abandonPlaceOrder:
                let request = try MessageCodec.decode(AbandonPlaceOrder.self, from: delivery.message.body)
                return try await store.abandon(
                    request, traceHeaders: delivery.message.traceHeaders, claiming: claim, on: connection)
            default:
                throw MalformedMessage(
                    "orchestrator.commands takes \(MessageTypes.startPlaceOrder) and \(MessageTypes.abandonPlaceOrder), "
                        + "got '\(type)'")
            }
        }
    }

    var reply: OutboxWritingHandler {
        { [store] delivery, connection, claim in
            guard delivery.message.type == MessageTypes.reply else {
                throw MalformedMessage("orchestrator.replies takes replies, got '\(delivery.message.type)'")
            }
            let reply = try MessageCodec.decode(StepReply.self, from: delivery.message.body)
            guard
                let outgoing = try await store.apply(
                    .reply(reply), sagaId: reply.sagaId, traceHeaders: delivery.message.traceHeaders, claiming: claim,
                    on: connection)
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
