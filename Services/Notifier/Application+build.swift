import AMQP
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import Messaging
import ServiceKit
import ServiceLifecycle

/// Wires the Notifier: its own queue on the status fan-out, the hub, and the WebSocket endpoint `/ws`.
func buildApplication(_ configuration: ServiceConfiguration) throws -> some ApplicationProtocol {
    let logger = Observability.logger("pets.notifier", level: configuration.logLevel)
    let environment = configuration.environment
    let tokens = OrderToken(
        secret: try environment.secret(
            "PETS_TOKEN_SECRET", minimumBytes: SecretPolicy.tokenBytes, "the Notifier verifies WebSocket tokens with it"
        ))
    let history = EventHistory(
        orchestratorURL: environment.string("PETS_ORCHESTRATOR_URL", default: "http://127.0.0.1:8084"), tokens: tokens)
    let limits = try SessionLimits(environment: environment)
    let hub = StatusHub(history: history)
    let consumer = AMQPConsumer(
        configuration: configuration.amqp, topology: PetsTopology.notifierQueue, queue: Queues.notifierStatus,
        prefetch: 256,
        logger: logger,
        onConnect: { Task { await hub.resyncAll() } })

    let router = Router()
    router.addStandardMiddleware(limits: configuration.httpLimits)
    router.addOperationalRoutes(
        service: configuration.name,
        health: HealthChecks(["broker": { consumer.isConnected }]))

    let webSocketRouter = Router(context: BasicWebSocketRequestContext.self)
    webSocketRouter.ws("ws") { request, _ in
        guard let orderId = request.uri.queryParameters.get("orderId")?.lowercased(),
            let token = request.uri.queryParameters.get("token"),
            tokens.verify(token, for: orderId)
        else {
            throw HTTPError(.forbidden, message: "A valid orderId and its token are required.")
        }
        return .upgrade([:])
    } onUpgrade: { inbound, outbound, context in
        guard let orderId = context.request.uri.queryParameters.get("orderId")?.lowercased() else { return }
        var sessionLogger = logger
        sessionLogger[metadataKey: "orderId"] = "\(orderId)"
        if let refusal = limits.admit(orderId) {
            sessionLogger.notice("WebSocket session refused", metadata: ["reason": "\(refusal.reason)"])
            try await outbound.close(refusal.closeCode, reason: refusal.reason)
            return
        }
        defer { limits.release(orderId) }
        try await StatusSession(orderId: orderId, hub: hub, logger: sessionLogger)
            .run(inbound: inbound, outbound: outbound)
    }

    let httpLimits = configuration.httpLimits
    let webSocketResponder = webSocketRouter.buildResponder()
    let server = HTTPServerBuilder { responder in
        RequestHeadDeadlineChannel(
            base: HTTP1WebSocketUpgradeChannel(
                responder: responder, webSocketResponder: webSocketResponder,
                configuration: .init(
                    http1: .init(idleTimeout: httpLimits.idleTimeAmount),
                    ws: .init(maxFrameSize: StatusSession.maximumClientMessage))),
            deadline: httpLimits.idleTimeAmount)
    }
    var app = Application(
        router: router,
        server: server,
        configuration: .init(
            address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "notifier"),
        logger: logger)
    app.addServices(StatusRelay(consumer: consumer, hub: hub, logger: logger))
    return app
}

/// Feeds status events from the broker to the hub. Nothing is stored here, so events are acked once handed over
/// (a batch at a time: one hop to the hub, one hand-over of acks); one that does not decode is dead-lettered.
struct StatusRelay: Service {
    let consumer: AMQPConsumer
    let hub: StatusHub
    let logger: Logger

    func run() async throws {
        consumer.start()
        for await batch in consumer.batches.cancelOnGracefulShutdown() {
            var events: [StatusEvent] = []
            var handed: [AMQPDelivery] = []
            for delivery in batch {
                guard let decoded = try? StatusEvent.decodeMessage(delivery.message.body), !decoded.isEmpty else {
                    logger.error(
                        "dead-lettering a status event that does not decode",
                        metadata: ["messageId": "\(delivery.message.messageID)"])
                    delivery.settle(.reject)
                    continue
                }
                events += decoded
                handed.append(delivery)
            }
            await hub.publish(events)
            AMQPDelivery.settle(handed, .ack)
        }
        await consumer.stop()
    }
}
