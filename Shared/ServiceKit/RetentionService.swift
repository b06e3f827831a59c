import Logging
import Metrics
import Persistence
import PostgresNIO
import Reliability
import ServiceLifecycle

/// Deletes what no longer protects anything, table by table (see `PruneRule`): at start, once the schema is
/// ready, then every `interval`. Replicas may prune at once: they delete disjoint or already-deleted rows.
public struct RetentionService: Service {
    let client: PostgresClient
    let rules: [PruneRule]
    let interval: Duration
    let schemaReady: ReadinessGate
    let logger: Logger
    static let batchSize = 5_000

    public init(
        client: PostgresClient, rules: [PruneRule], interval: Duration, schemaReady: ReadinessGate, logger: Logger
    ) {
        self.client = client
        self.rules = rules.filter { $0.retentionSeconds > 0 }
        self.interval = interval
        self.schemaReady = schemaReady
        self.logger = logger
    }

    public func run() async throws {
        await schemaReady.wait()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            for rule in rules {
                do {
                    _ = try await cancelWhenGracefulShutdown { try await prune(rule) }
                } catch {
                    logger.warning(
                        "pruning failed; trying again at the next round",
                        metadata: ["table": "\(rule.table)", "error": "\(String(reflecting: error))"])
                }
            }
            // Woken by a graceful shutdown, not only by the end of the interval (which may be an hour).
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// Deletes `rule`'s old rows in batches; returns how many.
    @discardableResult
    func prune(_ rule: PruneRule) async throws -> Int {
        let counter = Counter(label: "pets_rows_pruned_total", dimensions: [("table", rule.table)])
        var total = 0
        while !Task.isCancelled {
            var deleted = 0
            let rows = try await withDeadline(seconds: 60) { [client, logger] in
                try await client.query(rule.statement(rule.retentionSeconds, Self.batchSize), logger: logger)
                    .collect()
            }
            for row in rows { deleted = try row.decode(Int.self) }
            total += deleted
            counter.increment(by: deleted)
            if deleted < Self.batchSize { break }
        }
        if total > 0 {
            logger.info(
                "pruned old rows",
                metadata: [
                    "table": "\(rule.table)", "rows": "\(total)", "retentionSeconds": "\(rule.retentionSeconds)",
                ])
        }
        return total
    }
}

extension ServiceRuntime {
    /// The service's `RetentionService`: its inbox (`PETS_INBOX_RETENTION_HOURS`, default a week) plus `rules` of
    /// its own, every `PETS_PRUNE_INTERVAL_SECONDS` (default an hour).
    public func retention(_ rules: [PruneRule] = []) throws -> RetentionService {
        let environment = configuration.environment
        let inboxHours = try environment.double("PETS_INBOX_RETENTION_HOURS", default: 168)
        let interval = try environment.double("PETS_PRUNE_INTERVAL_SECONDS", default: 3_600)
        guard inboxHours >= 0, interval > 0 else {
            throw ConfigurationError(
                "PETS_INBOX_RETENTION_HOURS must be 0 (keep) or more, PETS_PRUNE_INTERVAL_SECONDS above 0")
        }
        return RetentionService(
            client: postgres, rules: [Inbox.pruneRule(retentionSeconds: inboxHours * 3_600)] + rules,
            interval: .milliseconds(Int(interval * 1_000)), schemaReady: schemaReady, logger: logger)
    }

    /// How long the history of a finished saga or order is kept (`PETS_HISTORY_RETENTION_DAYS`, default a year;
    /// 0 keeps it for ever), in seconds.
    public func historyRetentionSeconds() throws -> Double {
        let days = try configuration.environment.double("PETS_HISTORY_RETENTION_DAYS", default: 365)
        guard days >= 0 else { throw ConfigurationError("PETS_HISTORY_RETENTION_DAYS must be 0 (keep) or more") }
        return days * 86_400
    }
}
