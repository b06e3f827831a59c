import Persistence
import PostgresNIO
import SagaEngine

/// What the orchestrator prunes besides its inbox: the history lines and status events of sagas that ended
/// (`completed` or `cancelled`) longer ago than the history retention. Running and parked sagas keep everything
/// (an operator needs it); the `sagas` rows stay (one per order, like the orders themselves: they keep one saga per
/// order, even for a start that arrives very late).
enum SagaRetention {
    /// The statuses of a saga that ended.
    private static let ended = [SagaStatus.completed.rawValue, SagaStatus.cancelled.rawValue]

    static func rules(retentionSeconds: Double) -> [PruneRule] {
        [
            PruneRule(table: "saga_history", retentionSeconds: retentionSeconds) { retention, limit in
                """
                WITH doomed AS (
                    SELECT h.id FROM saga_history h
                    WHERE h.at < now() - make_interval(secs => \(retention))
                      AND EXISTS (SELECT 1 FROM sagas s WHERE s.id = h.saga_id AND s.status = ANY(\(ended))
                                  AND s.updated_at < now() - make_interval(secs => \(retention)))
                    LIMIT \(limit)
                ), gone AS (
                    DELETE FROM saga_history USING doomed WHERE saga_history.id = doomed.id RETURNING 1
                )
                SELECT count(*) FROM gone
                """
            },
            PruneRule(table: "saga_events", retentionSeconds: retentionSeconds) { retention, limit in
                """
                WITH doomed AS (
                    SELECT e.order_id, e.seq FROM saga_events e
                    WHERE e.at < now() - make_interval(secs => \(retention))
                      AND EXISTS (SELECT 1 FROM sagas s WHERE s.order_id = e.order_id
                                  AND s.status = ANY(\(ended))
                                  AND s.updated_at < now() - make_interval(secs => \(retention)))
                    LIMIT \(limit)
                ), gone AS (
                    DELETE FROM saga_events USING doomed
                    WHERE saga_events.order_id = doomed.order_id AND saga_events.seq = doomed.seq RETURNING 1
                )
                SELECT count(*) FROM gone
                """
            },
        ]
    }
}
