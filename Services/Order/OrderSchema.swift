import Persistence

enum OrderSchema {
    static let migrations = [
        Migration(
            version: 2,
            name: "orders, catalogue and order events",
            statements: [
                // Only the card's last four digits and holder are kept: the full number is never stored.
                """
                CREATE TABLE orders (
                    id TEXT PRIMARY KEY,
                    status TEXT NOT NULL CHECK (status IN ('placed', 'completed', 'cancelled')),
                    basket JSONB NOT NULL,
                    shipping_address JSONB NOT NULL,
                    card_last4 TEXT NOT NULL,
                    cardholder_name TEXT NOT NULL,
                    items_cents BIGINT NOT NULL,
                    shipping_cents BIGINT,
                    payment_cents BIGINT,
                    error_type TEXT,
                    error_message TEXT,
                    idempotency_key TEXT UNIQUE,
                    request_hash TEXT,
                    created_on TIMESTAMPTZ NOT NULL DEFAULT now(),
                    updated_on TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX orders_created ON orders (created_on, id)",
                // The catalogue: prices are the Order service's; stock is a projection of Inventory's stock events.
                """
                CREATE TABLE catalogue (
                    id TEXT PRIMARY KEY,
                    title TEXT NOT NULL,
                    unit_price_cents BIGINT NOT NULL,
                    image_url TEXT NOT NULL,
                    stock INT NOT NULL DEFAULT 0,
                    stock_version BIGINT NOT NULL DEFAULT 0
                )
                """,
                // The saga's status events for each order: its history.
                """
                CREATE TABLE order_events (
                    order_id TEXT NOT NULL,
                    seq INT NOT NULL,
                    status TEXT NOT NULL,
                    step TEXT,
                    message TEXT,
                    at TEXT NOT NULL,
                    PRIMARY KEY (order_id, seq)
                )
                """,
            ]),
        Migration(
            version: 3,
            name: "orders remember their start until a saga begins",
            statements: [
                // What `UnstartedOrders` needs: how many times the start was sent and when last, and the start
                // itself (to send it again word for word, under a new message id) with its trace context.
                """
                ALTER TABLE orders ADD COLUMN start_attempts INT NOT NULL DEFAULT 1,
                    ADD COLUMN start_sent_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    ADD COLUMN start_message TEXT,
                    ADD COLUMN traceparent TEXT
                """,
                // Small: only orders still waiting for their saga.
                "CREATE INDEX orders_unstarted ON orders (start_sent_at) WHERE status = 'placed'",
                // Is an order's start still waiting in the outbox (the broker unreachable)? Then its clock has not
                // started.
                "CREATE INDEX outbox_correlation ON outbox (correlation_id)",
            ]),
        Migration(
            version: 4,
            name: "order events by age",
            statements: [
                // When the event was recorded here, for pruning the history of long-finished orders (`at` is the
                // saga's text timestamp). BRIN: events arrive in time order, so this costs the projection almost
                // nothing.
                "ALTER TABLE order_events ADD COLUMN recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()",
                "CREATE INDEX order_events_recorded ON order_events USING brin (recorded_at)",
            ]),
    ]
}
