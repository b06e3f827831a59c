import Logging
import PostgresNIO

/// A numbered schema change. Applied once, in order, each in its own transaction.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    public let statements: [String]

    public init(version: Int, name: String, statements: [String]) {
        self.version = version
        self.name = name
        self.statements = statements
    }

    /// Outbox and inbox: version 1 of every service's schema.
    public static let messaging = Migration(
        version: 1,
        name: "outbox and inbox",
        statements: [
            """
            CREATE TABLE outbox (
                id BIGSERIAL PRIMARY KEY,
                exchange TEXT NOT NULL,
                routing_key TEXT NOT NULL,
                message_id TEXT NOT NULL,
                type TEXT NOT NULL,
                correlation_id TEXT,
                reply_to TEXT,
                headers JSONB NOT NULL DEFAULT '{}',
                content_type TEXT NOT NULL,
                body BYTEA NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE inbox (
                message_id TEXT PRIMARY KEY,
                message_type TEXT NOT NULL,
                received_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """,
        ]
    )
}

public enum Migrator {
    /// Brings the schema up to date. Replicas starting together serialise on an advisory lock.
    public static func migrate(_ client: PostgresClient, _ migrations: [Migration], logger: Logger) async throws {
        try await client.transaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(727274)", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """,
                logger: logger)
            var applied = Set<Int>()
            for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger)
                .decode(Int.self)
            {
                applied.insert(version)
            }
            for migration in migrations.sorted(by: { $0.version < $1.version })
            where !applied.contains(migration.version) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                logger.info("migrated", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            }
        }
    }
}
