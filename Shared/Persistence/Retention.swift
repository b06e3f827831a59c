import PostgresNIO

/// How one table sheds rows that no longer protect anything: a statement that deletes at most `limit` rows older
/// than `retentionSeconds` and returns how many it deleted (one `count(*)` row). `RetentionService` runs it in
/// batches until a batch comes back short, so no single statement holds many locks or a long transaction.
public struct PruneRule: Sendable {
    /// The table, for logs and the `pets_rows_pruned_total` metric.
    public let table: String
    public let retentionSeconds: Double
    public let statement: @Sendable (_ retentionSeconds: Double, _ limit: Int) -> PostgresQuery

    public init(
        table: String, retentionSeconds: Double,
        statement: @escaping @Sendable (_ retentionSeconds: Double, _ limit: Int) -> PostgresQuery
    ) {
        self.table = table
        self.retentionSeconds = retentionSeconds
        self.statement = statement
    }
}

extension Inbox {
    /// An inbox row only recognises a redelivered copy of its message. Copies come from a consumer that died
    /// before its ack (redelivered within seconds of the broker noticing) or from an outbox relay that published
    /// twice (at its next poll); both reach the queue long before any sane retention. A copy can then wait in the
    /// queue behind a backlog: the retention must exceed the longest backlog a queue may hold.
    public static func pruneRule(retentionSeconds: Double) -> PruneRule {
        PruneRule(table: "inbox", retentionSeconds: retentionSeconds) { retention, limit in
            """
            WITH doomed AS (
                SELECT message_id FROM inbox WHERE received_at < now() - make_interval(secs => \(retention))
                LIMIT \(limit)
            ), gone AS (
                DELETE FROM inbox USING doomed WHERE inbox.message_id = doomed.message_id RETURNING 1
            )
            SELECT count(*) FROM gone
            """
        }
    }
}

extension Migration {
    /// A BRIN index on the inbox's arrival time, for `Inbox.pruneRule`: rows arrive in time order, so a block range
    /// summary finds the old ones at almost no cost on the consumers' inserts.
    public static let inboxByAge = Migration(
        version: 100,
        name: "inbox rows by age",
        statements: ["CREATE INDEX inbox_received ON inbox USING brin (received_at)"])
}
