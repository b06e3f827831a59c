import AMQP
import Logging
import Messaging
import Persistence
import PostgresNIO
import Reliability

/// A participant's answer to a saga command, and any events its change causes.
public struct StepOutcome: Sendable {
    public var success: Bool
    public var errorType: String?
    public var errorMessage: String?
    public var events: [OutgoingMessage]

    public static func succeeded(events: [OutgoingMessage] = []) -> StepOutcome {
        StepOutcome(success: true, errorType: nil, errorMessage: nil, events: events)
    }

    public static func failed(_ type: String, _ message: String, events: [OutgoingMessage] = []) -> StepOutcome {
        StepOutcome(success: false, errorType: type, errorMessage: message, events: events)
    }
}

/// Routes a participant's commands by message type to handlers named after them, and sends each outcome back to
/// the command's `replyTo` through the outbox, in the handler's transaction.
public struct CommandRouter: Sendable {
    /// The queue the router's commands arrive on: the one queue of every endpoint it handles.
    public private(set) var queue: String?
    private var routes: [String: MessageHandler] = [:]

    public init() {}

    /// Handles `endpoint`'s command with `handle`; the payload type is the endpoint's, so a handler cannot read
    /// another command's payload. Every endpoint of one router must share its queue.
    public mutating func on<Payload: Codable & Sendable>(
        _ endpoint: CommandEndpoint<Payload>,
        handle: @escaping @Sendable (SagaCommand<Payload>, PostgresConnection, Logger) async throws -> StepOutcome
    ) {
        precondition(
            queue == nil || queue == endpoint.queue,
            "\(endpoint.name) arrives on \(endpoint.queue), not on this router's queue \(queue ?? "")")
        queue = endpoint.queue
        let command = endpoint.name
        routes[command] = { delivery, connection in
            let decoded: SagaCommand<Payload>
            do {
                decoded = try MessageCodec.decode(SagaCommand<Payload>.self, from: delivery.message.body)
            } catch {
                throw MalformedMessage("\(command) does not decode: \(error)")
            }
            var logger = Logger(label: "pets.participant")
            logger[metadataKey: "sagaId"] = "\(decoded.sagaId)"
            logger[metadataKey: "orderId"] = "\(decoded.orderId)"
            logger[metadataKey: "step"] = "\(decoded.step)"
            let outcome =
                FaultInjection.isActive(.fail, command)
                ? .failed("InjectedFault", "Error, \(command) failed (fault injection)")
                : try await handle(decoded, connection, logger)
            logger.debug("handled", metadata: ["success": "\(outcome.success)"])
            let reply = try OutgoingMessage.make(
                routingKey: delivery.message.replyTo ?? endpoint.replyQueue,
                type: MessageTypes.reply,
                correlationID: decoded.sagaId,
                headers: delivery.message.headers.filter { $0.key == "traceparent" || $0.key == "tracestate" },
                body: StepReply(
                    sagaId: decoded.sagaId, step: decoded.step, attempt: decoded.attempt, success: outcome.success,
                    errorType: outcome.errorType, errorMessage: outcome.errorMessage))
            return [reply] + outcome.events
        }
    }

    /// The handler for `MessageConsumerService`: unknown types are malformed and dead-lettered.
    public var handler: MessageHandler {
        let routes = self.routes
        return { delivery, connection in
            guard let route = routes[delivery.message.type] else {
                throw MalformedMessage("unknown message type '\(delivery.message.type)'")
            }
            return try await route(delivery, connection)
        }
    }
}
