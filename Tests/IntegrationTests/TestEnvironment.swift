import AMQP
import Foundation
import Logging
import Persistence
import PostgresNIO
import ServiceKit

/// The real PostgreSQL and RabbitMQ that `scripts/test` starts; the integration tests are enabled only there.
enum TestEnvironment {
    static let values = ProcessInfo.processInfo.environment

    /// True when `scripts/test` (or a developer) pointed the tests at running servers.
    static let available =
        values["PETS_AMQP_URL"] != nil && values["PETS_PG_PORT"] != nil && values["PETS_PW_INVENTORY"] != nil

    static var amqp: AMQPConfiguration {
        try! AMQPConfiguration(
            url: values["PETS_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/", connectionName: "tests")
    }

    static func database(_ name: String, passwordVariable: String) -> DatabaseConfiguration {
        DatabaseConfiguration(
            host: values["PETS_PG_HOST"] ?? "127.0.0.1",
            port: Int(values["PETS_PG_PORT"] ?? "5432")!,
            user: name,
            password: values[passwordVariable],
            database: name)
    }

    static let logger: Logger = {
        var logger = Logger(label: "tests")
        logger.logLevel = .warning
        return logger
    }()

    static func uniqueName(_ prefix: String) -> String {
        "\(prefix).\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Runs `body` with a started client for `configuration`, migrated with `migrations`.
    static func withDatabase<Result: Sendable>(
        _ configuration: DatabaseConfiguration, migrations: [Migration],
        _ body: @Sendable (PostgresClient) async throws -> Result
    ) async throws -> Result {
        let client = configuration.makeClient(maximumConnections: 8, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await Migrator.migrate(client, [Migration.messaging] + migrations, logger: logger)
            return try await body(client)
        }
    }

    /// Stops and starts the test RabbitMQ through the same script functions `scripts/test` used. `system` on a
    /// thread of its own: it blocks, and Foundation's `Process.waitUntilExit` can miss the child's exit here.
    static func restartBroker() async throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let command =
            "cd '\(repo.path)' && bash -c 'source scripts/lib.sh && pets_defaults && pets_stop_rabbitmq && pets_start_rabbitmq'"
        let status: Int32 = await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: system(command)) }.start()
        }
        guard status == 0 else {
            throw ConfigurationError("restarting RabbitMQ failed with status \(status)")
        }
    }
}

/// Starts a consumer and collects its deliveries in the background; tests wait for a count with a deadline.
final class DeliveryCollector: @unchecked Sendable {
    // @unchecked Sendable: `items` is only touched under `lock`.
    private let lock = NSLock()
    private var items: [AMQPDelivery] = []
    private var task: Task<Void, Never>?

    init(_ consumer: AMQPConsumer) {
        consumer.start()
        task = Task { [weak self] in
            for await delivery in consumer.deliveries {
                self?.lock.withLock { self?.items.append(delivery) }
            }
        }
    }

    deinit { task?.cancel() }

    var received: [AMQPDelivery] { lock.withLock { items } }

    /// Waits until at least `count` deliveries arrived, or `seconds` passed; returns what arrived.
    func waitFor(_ count: Int, seconds: Double = 10) async -> [AMQPDelivery] {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while received.count < count && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return received
    }
}
