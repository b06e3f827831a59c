import Persistence

enum PaymentSchema {
    static let migrations = [
        Migration(
            version: 2,
            name: "payments and ledger",
            statements: [
                // One row per saga. `status`: pending (being decided), charged, declined, refunded, voided (a refund
                // that found nothing charged: the tombstone that refuses a charge arriving late).
                """
                CREATE TABLE payments (
                    saga_id TEXT PRIMARY KEY,
                    order_id TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('pending', 'charged', 'declined', 'refunded', 'voided')),
                    amount_cents BIGINT NOT NULL DEFAULT 0,
                    card_last4 TEXT,
                    reason TEXT,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX payments_order ON payments (order_id)",
                // Money movements only ever appended: a charge, and at most one refund of it.
                """
                CREATE TABLE ledger (
                    id BIGSERIAL PRIMARY KEY,
                    saga_id TEXT NOT NULL,
                    order_id TEXT NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('charge', 'refund')),
                    amount_cents BIGINT NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    UNIQUE (saga_id, kind)
                )
                """,
                "CREATE INDEX ledger_order ON ledger (order_id)",
            ])
    ]
}
