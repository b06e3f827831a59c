import Hummingbird
import Logging
import Messaging
import Persistence
import ServiceKit

/// Wires the Inventory service: its database, its command consumer, the stock endpoints.
func buildApplication(_ configuration: ServiceConfiguration) throws -> some ApplicationProtocol {
    let logger = Observability.logger("pets.inventory", level: configuration.logLevel)
    let runtime = try ServiceRuntime(
        configuration: configuration, migrations: InventorySchema.migrations, logger: logger)
    let initialStock = try configuration.environment.int("PETS_INITIAL_STOCK", default: 1_000)
    let announcer = StockAnnouncer(client: runtime.postgres, publisher: runtime.publisher, logger: logger)
    let store = StockStore(logger: logger, stockChanged: { announcer.changed() })
    let credential = try OperatorCredential(environment: configuration.environment, service: "Inventory")

    var commands = CommandRouter()
    commands.on(Commands.reserveInventory, handle: store.reserveInventory)
    commands.on(Commands.releaseInventory, handle: store.releaseInventory)

    let router = Router()
    router.addStandardMiddleware(limits: configuration.httpLimits)
    router.addOperationalRoutes(service: configuration.name, health: runtime.healthChecks())
    StockController(
        client: runtime.postgres, store: store, relay: runtime.relay, credential: credential, logger: logger
    ).addRoutes(to: router)

    var app = Application(
        router: router,
        server: configuration.httpLimits.server,
        configuration: .init(
            address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "inventory"),
        logger: logger)
    app.addServices(
        runtime.postgres, runtime.relay,
        // One batch at a time: a batch locks the stock rows of all its reservations until it commits, and two
        // batches locking the same products in different message orders would deadlock.
        runtime.consume(commands, concurrency: 1),
        announcer,
        try runtime.retention())
    app.beforeServerStarts {
        try await runtime.migrateWhenReachable(seed: { try await store.seed($0, initialStock: initialStock) })
        runtime.relay.notify()
    }
    return app
}
