import Hummingbird
import Logging
import Messaging
import Persistence
import ServiceKit

/// Wires the Payment service: its ledger database, its command consumer, the ledger endpoint.
func buildApplication(_ configuration: ServiceConfiguration) throws -> some ApplicationProtocol {
    let logger = Observability.logger("pets.payment", level: configuration.logLevel)
    let runtime = try ServiceRuntime(configuration: configuration, migrations: PaymentSchema.migrations, logger: logger)
    let ledger = PaymentLedger(logger: logger)
    let credential = try OperatorCredential(environment: configuration.environment, service: "Payment")

    var commands = CommandRouter()
    commands.on(Commands.processPayment, handle: ledger.processPayment)
    commands.on(Commands.refundPayment, handle: ledger.refundPayment)

    let router = Router()
    router.addStandardMiddleware(limits: configuration.httpLimits)
    router.addOperationalRoutes(service: configuration.name, health: runtime.healthChecks())
    LedgerController(client: runtime.postgres, ledger: ledger).addRoutes(
        to: router.group().add(middleware: OperatorAuthMiddleware(credential)))

    var app = Application(
        router: router,
        server: configuration.httpLimits.server,
        configuration: .init(
            address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "payment"),
        logger: logger)
    app.addServices(
        runtime.postgres, runtime.relay,
        runtime.consume(commands),
        try runtime.retention())
    app.beforeServerStarts {
        try await runtime.migrateWhenReachable()
    }
    return app
}
