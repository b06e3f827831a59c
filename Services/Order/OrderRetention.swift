import Persistence
import PostgresNIO

/// What the Order service prunes besides its inbox: the history (`order_events`) of orders that ended longer ago
/// than the history retention. The orders themselves stay: they are the shop's record. An order still `placed`
/// keeps its events (`UnstartedOrders` reads them to know its saga began).
enum OrderRetention {
    static func rules(retentionSeconds: Double) -> [PruneRule] {
        [
            PruneRule(table: "order_events", retentionSeconds: retentionSeconds) { retention, limit in
                """
                WITH doomed AS (
                    SELECT e.order_id, e.seq FROM order_events e
                    WHERE e.recorded_at < now() - make_interval(secs => \(retention))
                      AND EXISTS (SELECT 1 FROM orders o WHERE o.id = e.order_id AND o.status <> \(OrderStatus.placed)
                                  AND o.updated_on < now() - make_interval(secs => \(retention)))
                    LIMIT \(limit)
                ), gone AS (
                    DELETE FROM order_events USING doomed
                    WHERE order_events.order_id = doomed.order_id AND order_events.seq = doomed.seq RETURNING 1
                )
                SELECT count(*) FROM gone
                """
            }
        ]
    }
}
