import Foundation
import Hummingbird
import Logging
import Messaging
import NIOCore
import Persistence
import ServiceKit

/// Wires the Order service: the REST gateway, the web shop's files, its participant commands and projections.
func buildApplication(_ configuration: ServiceConfiguration) throws -> some ApplicationProtocol {
    let logger = Observability.logger("pets.order", level: configuration.logLevel)
    let runtime = try ServiceRuntime(configuration: configuration, migrations: OrderSchema.migrations, logger: logger)
    let environment = configuration.environment
    let tokens = OrderToken(
        secret: try environment.secret(
            "PETS_TOKEN_SECRET", minimumBytes: SecretPolicy.tokenBytes,
            "the Order service signs WebSocket tokens with it"))
    let credential = try OperatorCredential(environment: environment, service: "the Order service")
    let repository = OrderRepository(client: runtime.postgres, logger: logger)
    let handlers = OrderHandlers(logger: logger)
    let unstarted = UnstartedOrders(
        client: runtime.postgres, logger: logger,
        deadline: try environment.double("PETS_START_DEADLINE_SECONDS", default: 30),
        maxAttempts: try environment.int("PETS_START_ATTEMPTS", default: 3))
    guard unstarted.deadline > 0, unstarted.maxAttempts >= 1 else {
        throw ConfigurationError("PETS_START_DEADLINE_SECONDS must be above 0 and PETS_START_ATTEMPTS at least 1")
    }

    var commands = CommandRouter()
    commands.on(Commands.completeOrder, handle: handlers.completeOrder)
    commands.on(Commands.cancelOrder, handle: handlers.cancelOrder)

    let router = Router()
    router.addStandardMiddleware(limits: configuration.httpLimits)
    router.addOperationalRoutes(service: configuration.name, health: runtime.healthChecks())
    // What the web shop's pages need to know: where the saga monitor finds the Orchestrator's operator API.
    let publicOrchestratorURL = environment.string("PETS_PUBLIC_ORCHESTRATOR_URL", default: "http://localhost:8084")
    // The REST API's OpenAPI document, from the repository (kept true by the API tests).
    let openAPIPath = environment.string("PETS_OPENAPI", default: "openapi.yaml")
    router.get("openapi.yaml") { _, _ -> Response in
        guard let document = FileManager.default.contents(atPath: openAPIPath) else {
            throw HTTPError(.notFound, message: "The OpenAPI document is not installed here.")
        }
        return Response(
            status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: document)))
    }
    router.get("config.json") { _, _ -> Response in
        try .json(["orchestratorUrl": publicOrchestratorURL])
    }
    OrderController(
        repository: repository, tokens: tokens, credential: credential, relay: runtime.relay,
        publicWebSocketURL: environment.string("PETS_PUBLIC_WS_URL", default: "ws://localhost:8081"),
        logger: logger
    ).addRoutes(to: router)
    router.refuseOtherMethods([
        ("catalogue", [.get]), ("orders", [.get, .post]), ("order", [.post]), ("orders/:orderId", [.get]),
        ("config.json", [.get]), ("openapi.yaml", [.get]),
    ])
    // Added after every route, so it serves the web shop's files only where no route matches: a route's own 404
    // ("No order with id ...") reaches the client as the route threw it, not as a file lookup.
    let webRoot = environment.string("PETS_WEB_ROOT", default: "Public")
    if FileManager.default.fileExists(atPath: webRoot) {
        router.add(middleware: FileMiddleware(webRoot, searchForIndexHtml: true, logger: logger))
    }

    var app = Application(
        router: router,
        server: configuration.httpLimits.server,
        configuration: .init(
            address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "order"),
        logger: logger)
    app.addServices(
        runtime.postgres, runtime.relay,
        runtime.consume(commands),
        // One batch at a time, in the queue's order: an order's status events arrive in sequence, and a history that
        // showed seq 6 before seq 5 for a moment would be visible to a client reading `GET /orders/{id}`.
        runtime.project(Queues.orderEvents, concurrency: 1, handler: handlers.projectEvent),
        UnstartedOrderSweeper(
            orders: unstarted, relay: runtime.relay, schemaReady: runtime.schemaReady, logger: logger),
        try runtime.retention(OrderRetention.rules(retentionSeconds: try runtime.historyRetentionSeconds())))
    app.beforeServerStarts {
        try await runtime.migrateWhenReachable(seed: { _ in try await repository.seedCatalogue() })
    }
    return app
}
