import Hummingbird
import Logging
import Messaging
import Persistence
import SagaEngine
import ServiceKit

/// Wires the Orchestrator: saga store, the consumers of start requests and replies, the timer that fires
/// deadlines and retries, and the operator API.
func buildApplication(_ configuration: ServiceConfiguration) throws -> some ApplicationProtocol {
    let logger = Observability.logger("pets.orchestrator", level: configuration.logLevel)
    let runtime = try ServiceRuntime(
        configuration: configuration, migrations: OrchestratorSchema.migrations, logger: logger)
    let environment = configuration.environment
    // The saga's timing: RetryPolicy.step and .compensation unless the environment says otherwise.
    var step = RetryPolicy.step
    step.deadline = try environment.double("PETS_STEP_DEADLINE_SECONDS", default: step.deadline)
    step.maxAttempts = try environment.int("PETS_STEP_ATTEMPTS", default: step.maxAttempts)
    step.interval = try environment.double("PETS_RETRY_INTERVAL_SECONDS", default: step.interval)
    var compensation = RetryPolicy.compensation
    compensation.deadline = step.deadline
    compensation.maxAttempts = try environment.int("PETS_COMPENSATION_ATTEMPTS", default: compensation.maxAttempts)
    // Compensations pause twice as long as steps before each retry.
    compensation.interval = step.interval * 2
    let definition = PlaceOrderSaga.definition(step: step, compensation: compensation)
    let store = SagaStore(machine: SagaMachine(definition), logger: logger)
    let handlers = SagaHandlers(store: store)
    let credential = try OperatorCredential(environment: environment, service: "the Orchestrator")
    // The Notifier fetches an order's events with that order's WebSocket token, so the Orchestrator verifies it.
    let tokens = OrderToken(
        secret: try environment.secret(
            "PETS_TOKEN_SECRET", minimumBytes: SecretPolicy.tokenBytes,
            "the Orchestrator accepts an order's WebSocket token for that order's status events"))

    let router = Router()
    router.addStandardMiddleware(limits: configuration.httpLimits)
    // The saga monitor is a page of the web shop (another origin): it reads this API from the browser. Only the
    // shop's own origin may; any other is refused before a handler runs.
    router.add(middleware: ShopOriginCORSMiddleware(environment: environment))
    router.addOperationalRoutes(service: configuration.name, health: runtime.healthChecks())
    OperatorController(
        client: runtime.postgres, store: store, relay: runtime.relay, credential: credential, tokens: tokens,
        logger: logger
    ).addRoutes(to: router)

    var app = Application(
        router: router,
        server: configuration.httpLimits.server,
        configuration: .init(
            address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "orchestrator"),
        logger: logger)
    app.addServices(
        runtime.postgres, runtime.relay,
        runtime.consume(Queues.orchestratorCommands, writingHandler: handlers.startPlaceOrder),
        runtime.consume(Queues.orchestratorReplies, writingHandler: handlers.reply),
        SagaTimerService(
            client: runtime.postgres, store: store, relay: runtime.relay, schemaReady: runtime.schemaReady,
            logger: logger),
        try runtime.retention(SagaRetention.rules(retentionSeconds: try runtime.historyRetentionSeconds())))
    app.beforeServerStarts {
        try await runtime.migrateWhenReachable()
    }
    return app
}
