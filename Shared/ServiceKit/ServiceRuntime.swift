import AMQP
import Foundation
import Hummingbird
import Logging
import Messaging
import Persistence
import PostgresNIO
import Reliability
import ServiceLifecycle

/// What every service with a database has: its PostgreSQL client, one broker connection (its thread publishes for the
/// outbox relay and consumes every queue of the service), consumers of its queues, and the health and metrics
/// endpoints. Services build one and add their own parts.
public struct ServiceRuntime: Sendable {
    public let configuration: ServiceConfiguration
    public let logger: Logger
    public let postgres: PostgresClient
    public let broker: AMQPConnection
    public let publisher: AMQPPublisher
    public let relay: OutboxRelay
    public let schemaReady = ReadinessGate()
    /// How often a failing message is tried before it is dead-lettered (see `MessageRetryPolicy`).
    public let retryPolicy: MessageRetryPolicy
    private let migrations: [Migration]
    private let consumers: LockedConsumers

    public init(configuration: ServiceConfiguration, migrations: [Migration], logger: Logger) throws {
        guard let database = configuration.database else {
            throw ConfigurationError("\(configuration.name) needs a database configuration")
        }
        self.configuration = configuration
        self.logger = logger
        retryPolicy = try MessageRetryPolicy(environment: configuration.environment)
        self.migrations = [Migration.messaging, Migration.inboxByAge] + migrations
        postgres = database.makeClient(logger: logger)
        broker = AMQPConnection(
            configuration: configuration.amqp, topology: PetsTopology.declaredByServices, logger: logger)
        publisher = AMQPPublisher(connection: broker)
        relay = OutboxRelay(client: postgres, publisher: publisher, logger: logger)
        consumers = LockedConsumers()
    }

    /// A consumer of the queue `router`'s commands arrive on, each handled in a transaction with the inbox and the
    /// outbox.
    public func consume(_ router: CommandRouter, prefetch: UInt16 = 64, concurrency: Int = 4)
        -> MessageConsumerService
    {
        guard let queue = router.queue else { preconditionFailure("a command router with no command") }
        return consumer(queue, prefetch: prefetch, concurrency: concurrency, handling: .transactional(router.handler))
    }

    /// A consumer of `queue` whose handler writes its own outbox rows (see `OutboxWritingHandler`).
    public func consume(
        _ queue: String, prefetch: UInt16 = 64, concurrency: Int = 4, writingHandler: @escaping OutboxWritingHandler
    ) -> MessageConsumerService {
        consumer(queue, prefetch: prefetch, concurrency: concurrency, handling: .writesOutbox(writingHandler))
    }

    /// A consumer of `queue` whose handler is idempotent by itself and sends nothing (see `ProjectionHandler`).
    public func project(
        _ queue: String, prefetch: UInt16 = 64, concurrency: Int = 4, handler: @escaping ProjectionHandler
    ) -> MessageConsumerService {
        consumer(queue, prefetch: prefetch, concurrency: concurrency, handling: .projection(handler))
    }

    private func consumer(
        _ queue: String, prefetch: UInt16, concurrency: Int, handling: MessageConsumerService.Handling
    ) -> MessageConsumerService {
        let consumer = broker.consumer(queue: queue, prefetch: prefetch)
        consumers.append(consumer)
        return MessageConsumerService(
            queue: queue, consumer: consumer, client: postgres, relay: relay, schemaReady: schemaReady,
            concurrency: concurrency, policy: retryPolicy, logger: logger, handling: handling)
    }

    /// Migrates the schema and runs `seed`, waiting for the database as long as it takes (no crash loop while it
    /// starts), then opens `schemaReady`, so consumers start only on a complete schema with its seed data.
    public func migrateWhenReachable(seed: (@Sendable (PostgresClient) async throws -> Void)? = nil) async throws {
        var backoff = 0.2
        while true {
            do {
                try await Migrator.migrate(postgres, migrations, logger: logger)
                try await seed?(postgres)
                await schemaReady.open()
                return
            } catch  where DatabaseErrors.isTransient(error) {
                logger.warning(
                    "database not reachable yet; retrying", metadata: ["error": "\(String(reflecting: error))"])
                try await Task.sleep(for: .seconds(backoff))
                backoff = min(backoff * 2, 5)
            }
        }
    }

    /// Ready when the schema is migrated, the database answers and every consumer holds a broker connection.
    public func healthChecks() -> HealthChecks {
        let postgres = self.postgres
        let schemaReady = self.schemaReady
        let consumers = self.consumers
        return HealthChecks([
            "database": {
                guard await schemaReady.opened else { return false }
                return (try? await withDeadline(seconds: 2) { _ = try await postgres.query("SELECT 1") }) != nil
            },
            "broker": { [broker] in broker.isConnected && consumers.all.allSatisfy(\.isConnected) },
        ])
    }
}

/// The consumers a runtime made, for its health check.
final class LockedConsumers: @unchecked Sendable {
    // @unchecked Sendable: `consumers` is only touched under `lock`.
    private let lock = NSLock()
    private var consumers: [AMQPConsumer] = []

    func append(_ consumer: AMQPConsumer) { lock.withLock { consumers.append(consumer) } }
    var all: [AMQPConsumer] { lock.withLock { consumers } }
}
