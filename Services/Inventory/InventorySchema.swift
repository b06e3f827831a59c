import Persistence

enum InventorySchema {
    static let migrations = [
        Migration(
            version: 2,
            name: "products and reservations",
            statements: [
                """
                CREATE TABLE products (
                    id TEXT PRIMARY KEY,
                    title TEXT NOT NULL,
                    stock INT NOT NULL CHECK (stock >= 0),
                    version BIGINT NOT NULL DEFAULT 1
                )
                """,
                // One row per saga. `status`: pending (being decided), reserved, rejected, released. A release that
                // finds no row leaves a `released` tombstone, so a reservation arriving late is refused.
                """
                CREATE TABLE reservations (
                    saga_id TEXT PRIMARY KEY,
                    order_id TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('pending', 'reserved', 'rejected', 'released')),
                    lines JSONB NOT NULL DEFAULT '[]',
                    reason TEXT,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX reservations_order ON reservations (order_id)",
            ])
    ]
}
