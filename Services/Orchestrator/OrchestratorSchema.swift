import Persistence

enum OrchestratorSchema {
    static let migrations = [
        Migration(
            version: 2,
            name: "sagas, history and status events",
            statements: [
                // The whole instance is stored as JSON; the columns beside it are what operators search and what
                // the timer scan needs.
                """
                CREATE TABLE sagas (
                    id TEXT PRIMARY KEY,
                    order_id TEXT NOT NULL UNIQUE,
                    definition TEXT NOT NULL,
                    status TEXT NOT NULL,
                    phase TEXT NOT NULL,
                    step TEXT,
                    attempt INT NOT NULL,
                    timer_at TIMESTAMPTZ,
                    instance JSONB NOT NULL,
                    event_seq INT NOT NULL DEFAULT 0,
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )
                """,
                "CREATE INDEX sagas_timer ON sagas (timer_at) WHERE timer_at IS NOT NULL",
                "CREATE INDEX sagas_status ON sagas (status, updated_at)",
                """
                CREATE TABLE saga_history (
                    id BIGSERIAL PRIMARY KEY,
                    saga_id TEXT NOT NULL,
                    at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    step TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    attempt INT NOT NULL,
                    detail TEXT,
                    duration_ms INT
                )
                """,
                "CREATE INDEX saga_history_saga ON saga_history (saga_id, id)",
                // Every status event an order's client was (or will be) sent, numbered: the Notifier replays these.
                """
                CREATE TABLE saga_events (
                    order_id TEXT NOT NULL,
                    seq INT NOT NULL,
                    body JSONB NOT NULL,
                    at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    PRIMARY KEY (order_id, seq)
                )
                """,
            ]),
        Migration(
            version: 3,
            name: "history and status events by age",
            statements: [
                // For pruning the history of long-finished sagas (`SagaRetention`). BRIN: rows arrive in time order.
                "CREATE INDEX saga_history_at ON saga_history USING brin (at)",
                "CREATE INDEX saga_events_at ON saga_events USING brin (at)",
            ]),
    ]
}
