import AMQP
import Logging
import Messaging
import Persistence
import PostgresNIO
import ServiceLifecycle

/// Tells the catalogue (`pets.stock`, projected by the Order service) the stock levels after reservations and
/// releases change them, coalesced: one message carries the newest level of every product that changed since the
/// last, and at most one goes out per `interval`. A level is a state, not an event: each carries its version, the
/// projection keeps the highest, so a level sent twice or late does no harm and only the newest matters.
///
/// Levels are read from the database after the changes committed and published with a confirm, not written to the
/// outbox: a reservation costs no stock message of its own. Nothing is lost in a crash: at start the announcer
/// sends every product's level, and a look every `sweepInterval` sends whatever a failed publish (or a change that
/// committed after its look) left out. Restocks and the seed still go through the outbox, in their transaction.
final class StockAnnouncer: Service, Sendable {
    private let client: PostgresClient
    private let publisher: AMQPPublisher
    private let logger: Logger
    private let interval: Duration
    private let sweepInterval: Duration
    private let changes: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init(
        client: PostgresClient, publisher: AMQPPublisher, logger: Logger, interval: Duration = .milliseconds(200),
        sweepInterval: Duration = .seconds(5)
    ) {
        self.client = client
        self.publisher = publisher
        self.logger = logger
        self.interval = interval
        self.sweepInterval = sweepInterval
        (changes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Some stock changed (or is about to commit): announce the levels soon.
    func changed() {
        continuation.yield()
    }

    func run() async throws {
        let sweeper = Task { [continuation, sweepInterval] in
            while !Task.isCancelled {
                continuation.yield()
                try? await Task.sleep(for: sweepInterval)
            }
        }
        defer { sweeper.cancel() }
        // The versions the catalogue was last sent; empty at start, so the first look sends every level.
        var announced: [String: Int64] = [:]
        for await _ in changes.cancelOnGracefulShutdown() {
            // Let the change that woke us commit, and the next ones gather.
            try? await Task.sleep(for: interval)
            do {
                try await announce(since: &announced)
            } catch {
                // The next look (at the latest the sweep's) sends them.
                logger.warning("announcing stock levels failed", metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }

    private func announce(since announced: inout [String: Int64]) async throws {
        let levels = try await client.withConnection { [logger] in try await StockStore.levels($0, logger: logger) }
        let changed = levels.filter { level in announced[level.productId].map { $0 < level.version } ?? true }
        guard !changed.isEmpty else { return }
        try await publisher.publish([
            try OutgoingMessage.make(
                exchange: Exchanges.stock, routingKey: "", type: MessageTypes.stockLevels,
                body: StockLevels(levels: changed))
        ])
        for level in changed { announced[level.productId] = level.version }
    }
}
