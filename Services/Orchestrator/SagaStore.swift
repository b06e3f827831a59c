import AMQP
import Foundation
import Logging
import Messaging
import Metrics
import Persistence
import PostgresNIO
import SagaEngine
import ServiceKit

/// Loads saga instances, runs the state machine on them and stores the result with every effect — commands and
/// status events to the outbox, history lines — in the caller's transaction. Returns the outbox rows written, for
/// `OutboxRelay.send(_:)` after the commit.
struct SagaStore: Sendable {
    let machine: SagaMachine<PlaceOrderData>
    let logger: Logger

    private static let started = Counter(label: "pets_sagas_started_total")
    private static let completed = Counter(label: "pets_sagas_completed_total")
    private static let compensated = Counter(label: "pets_sagas_compensated_total")
    private static let parked = Counter(label: "pets_sagas_parked_total")
    /// Sagas closed before any step ran, because the order's start never arrived (see `abandon`).
    private static let abandoned = Counter(label: "pets_sagas_abandoned_total")

    /// Creates the order's saga unless it exists, and starts it.
    func start(
        _ request: StartPlaceOrder, traceHeaders: [String: String], claiming claim: InboxClaim? = nil,
        on connection: PostgresConnection
    ) async throws -> [OutboxEntry] {
        try await create(
            PlaceOrderData(request, traceparent: traceHeaders["traceparent"]), with: .start,
            traceHeaders: traceHeaders, claiming: claim, on: connection)
    }

    /// Creates the order's saga unless it exists, already closing: no step runs, the order is cancelled with the
    /// request's reason and the client gets a final `failed`. An order whose saga exists keeps it: that saga ends
    /// the order by itself, and the order then has its status events.
    func abandon(
        _ request: AbandonPlaceOrder, traceHeaders: [String: String], claiming claim: InboxClaim? = nil,
        on connection: PostgresConnection
    ) async throws -> [OutboxEntry] {
        let data = PlaceOrderData(
            StartPlaceOrder(
                orderId: request.orderId, lines: [], postCode: "",
                card: CardSummary(last4: "", expiry: "", cardholderName: ""),
                createdOn: request.createdOn),
            traceparent: traceHeaders["traceparent"])
        let failure = SagaFailure(step: "start", type: request.errorType, message: request.errorMessage)
        let outbox = try await create(
            data, with: .abandon(failure), traceHeaders: traceHeaders, claiming: claim, on: connection)
        if !outbox.isEmpty { Self.abandoned.increment() }
        return outbox
    }

    /// Inserts the order's saga (one per order) and runs `event` on it; nothing when the order has a saga already.
    private func create(
        _ data: PlaceOrderData, with event: SagaEvent, traceHeaders: [String: String], claiming claim: InboxClaim?,
        on connection: PostgresConnection
    ) async throws -> [OutboxEntry] {
        let sagaId = UUID().uuidString.lowercased()
        var saga = SagaInstance(id: sagaId, orderId: data.orderId.lowercased(), data: data)
        let instance = try Self.encode(saga)
        var created = false
        for try await _ in try await connection.execute(
            CreateStatement(
                sagaId: sagaId, orderId: saga.orderId, definition: machine.definition.name,
                status: saga.status.rawValue, phase: saga.phase.rawValue, instance: instance),
            logger: logger)
        {
            created = true
        }
        guard created else {
            logger.info("saga for this order exists already", metadata: ["orderId": "\(saga.orderId)"])
            return []
        }
        if case .start = event { Self.started.increment() }
        let effects = machine.handle(event, &saga, now: Date())
        return try await save(
            saga, effects: effects, eventSeq: 0, traceHeaders: traceHeaders, claiming: claim, on: connection)
    }

    /// Applies `event` to the saga `sagaId` (locked for the transaction). Unknown sagas are reported, not created.
    @discardableResult
    func apply(
        _ event: SagaEvent, sagaId: String, traceHeaders: [String: String] = [:], claiming claim: InboxClaim? = nil,
        on connection: PostgresConnection
    ) async throws -> [OutboxEntry]? {
        guard let (saga, eventSeq) = try await load(sagaId, on: connection) else { return nil }
        var updated = saga
        let effects = machine.handle(event, &updated, now: Date())
        return try await save(
            updated, effects: effects, eventSeq: eventSeq, traceHeaders: traceHeaders, claiming: claim, on: connection)
    }

    /// Parks the saga `sagaId` as `needs_attention` without running the state machine: for a saga that cannot be
    /// run, whose stored instance may not even load. Reads only the plain columns; records `reason` in the history
    /// (the monitor's timeline) and sends the client a `needsAttention` event, as any parked saga does.
    func park(sagaId: String, reason: String, on connection: PostgresConnection) async throws -> [OutboxEntry] {
        let rows = try await connection.query(
            """
            SELECT order_id, event_seq, coalesce(step, 'timer'), instance #>> '{data,traceparent}'
            FROM sagas WHERE id = \(sagaId) FOR UPDATE
            """,
            logger: logger)
        var found: (String, Int, String, String?)?
        for try await row in rows.decode((String, Int, String, String?).self) { found = row }
        guard let (orderId, eventSeq, step, traceparent) = found else { return [] }
        let seq = eventSeq + 1
        let event = StatusEvent(
            orderId: orderId, seq: seq, status: .needsAttention, step: step,
            message: "The order's saga cannot go on by itself; an operator must look at it",
            at: Timestamp.string(Date()), traceparent: traceparent)
        let body = try MessageCodec.encode(event)
        let message = OutgoingMessage(
            exchange: Exchanges.status, routingKey: "",
            message: AMQPMessage(
                messageID: "\(orderId)/\(seq)", correlationID: sagaId, type: MessageTypes.orderStatus,
                headers: traceparent.map { ["traceparent": $0] } ?? [:], body: body))
        let outbox = try OutboxRows([message])
        let inserted = try await connection.query(
            """
            WITH events AS (
                INSERT INTO saga_events (order_id, seq, body)
                VALUES (\(orderId), \(seq), \(String(decoding: body, as: UTF8.self))::jsonb)
            ), history AS (
                INSERT INTO saga_history (saga_id, step, kind, attempt, detail)
                VALUES (\(sagaId), \(step), \(SagaHistoryEntry.Kind.parked.rawValue), 0, \(reason))
            ), saga AS (
                UPDATE sagas SET status = \(SagaStatus.needsAttention.rawValue), timer_at = NULL, event_seq = \(seq),
                    updated_at = now(),
                    -- The instance agrees, so that once repaired an operator's retry resumes it.
                    instance = CASE WHEN jsonb_typeof(instance) = 'object'
                        THEN jsonb_set(instance - 'timer', '{status}', to_jsonb(\(SagaStatus.needsAttention.rawValue)::text))
                        ELSE instance END
                WHERE id = \(sagaId)
            )
            \(insertOutbox: outbox)
            ORDER BY n RETURNING \(unescaped: Outbox.returnedColumns)
            """,
            logger: logger)
        Self.parked.increment()
        return try await OutboxRows.entries(from: inserted.decode((Int64, String, String).self), messages: [message])
    }

    func load(_ sagaId: String, on connection: PostgresConnection) async throws -> (SagaInstance<PlaceOrderData>, Int)?
    {
        for try await (instance, eventSeq) in try await connection.execute(
            LoadStatement(sagaId: sagaId), logger: logger)
        {
            return (try Self.decode(instance), eventSeq)
        }
        return nil
    }

    /// `create`'s insert, prepared once per connection.
    struct CreateStatement: QueryStatement {
        static let name = "pets_saga_create"
        static let sql = CreateStatement(sagaId: "", orderId: "", definition: "", status: "", phase: "", instance: "")
            .query.sql
        typealias Row = Int
        let query: PostgresQuery

        init(sagaId: String, orderId: String, definition: String, status: String, phase: String, instance: String) {
            query = """
                INSERT INTO sagas (id, order_id, definition, status, phase, step, attempt, instance)
                VALUES (\(sagaId), \(orderId), \(definition), \(status), \(phase), NULL, 0, \(instance)::jsonb)
                ON CONFLICT (order_id) DO NOTHING RETURNING 1
                """
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int.self) }
    }

    /// `load`'s query, prepared once per connection.
    struct LoadStatement: PostgresPreparedStatement {
        static let name = "pets_saga_load"
        static let sql = "SELECT instance::text, event_seq FROM sagas WHERE id = $1 FOR UPDATE"
        typealias Row = (String, Int)
        let sagaId: String
        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings()
            try bindings.append(sagaId)
            return bindings
        }
        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// Stores the saga with its status events, history lines and outgoing messages in one statement, which also
    /// makes the message's inbox `claim` (unless nil): a message's whole effect on the orchestrator's database costs
    /// one round trip plus the load.
    private func save(
        _ saga: SagaInstance<PlaceOrderData>, effects: [SagaEffect], eventSeq: Int, traceHeaders: [String: String],
        claiming claim: InboxClaim?, on connection: PostgresConnection
    ) async throws -> [OutboxEntry] {
        var outgoing: [OutgoingMessage] = []
        var seq = eventSeq
        let traceHeaders = saga.data.traceparent.map { ["traceparent": $0] } ?? traceHeaders
        let now = Date()
        var eventSeqs: [Int32] = []
        var eventBodies: [String] = []
        var events: [StatusEvent] = []
        var statusPosition: Int?
        var history = HistoryRows()
        for effect in effects {
            switch effect {
            case .send(let queue, let command, _, let body):
                outgoing.append(
                    OutgoingMessage(
                        routingKey: queue,
                        message: AMQPMessage(
                            messageID: UUID().uuidString.lowercased(), correlationID: saga.id, type: command,
                            replyTo: Queues.orchestratorReplies, headers: traceHeaders, body: body)))
            case .status(let status, let step, let message, let errorType):
                seq += 1
                let event = StatusEvent(
                    orderId: saga.orderId, seq: seq, status: status, step: step, message: message, errorType: errorType,
                    amountPaid: status == .success ? saga.data.amountCents.map(Money.dollars) : nil,
                    createdOn: status.isFinalStatus ? saga.data.createdOn : nil,
                    at: Timestamp.string(now), traceparent: saga.data.traceparent)
                eventSeqs.append(Int32(seq))
                eventBodies.append(String(decoding: try MessageCodec.encode(event), as: UTF8.self))
                events.append(event)
                statusPosition = statusPosition ?? outgoing.count
                count(status)
            case .history(let entry):
                history.append(entry)
                if let duration = entry.durationMs,
                    entry.kind == .succeeded || entry.kind == .failed || entry.kind == .compensated
                {
                    Timer(label: "pets_saga_step_seconds", dimensions: [("step", entry.step)])
                        .recordMilliseconds(duration)
                }
            }
        }
        if let position = statusPosition, let first = events.first, let last = events.last {
            // One message for the transition's events (a step's success and the next local step's, or the last
            // step's and the saga's): fewer publishes and deliveries than one per event.
            let single = events.count == 1
            outgoing.insert(
                OutgoingMessage(
                    exchange: Exchanges.status, routingKey: "",
                    message: AMQPMessage(
                        messageID: single ? "\(saga.orderId)/\(first.seq)" : "\(saga.orderId)/\(first.seq)-\(last.seq)",
                        correlationID: saga.id, type: MessageTypes.orderStatus, headers: traceHeaders,
                        body: single ? try MessageCodec.encode(first) : try MessageCodec.encode(events))),
                at: position)
        }
        let save = SaveStatement(
            SaveStatement.Values(
                sagaId: saga.id, orderId: saga.orderId, eventSeqs: eventSeqs, eventBodies: eventBodies,
                history: history, status: saga.status.rawValue, phase: saga.phase.rawValue,
                step: machine.currentStepName(saga), attempt: saga.attempt, timerAt: saga.timer?.at,
                instance: try Self.encode(saga), eventSeq: seq, outbox: try OutboxRows(outgoing), claim: claim))
        return try await OutboxRows.entries(
            from: try await connection.execute(save, logger: logger), messages: outgoing)
    }

    /// `save`'s statement, prepared once per connection (its text does not depend on the values).
    struct SaveStatement: QueryStatement {
        struct Values {
            var sagaId = "", orderId = ""
            var eventSeqs: [Int32] = [], eventBodies: [String] = []
            var history = HistoryRows()
            var status = "", phase = "", step: String? = nil
            var attempt = 0
            var timerAt: Date? = nil
            var instance = "{}"
            var eventSeq = 0
            var outbox = OutboxRows()
            var claim: InboxClaim? = nil
        }

        static let name = "pets_saga_save"
        static let sql = query(Values()).sql
        typealias Row = (Int64?, String?, String?)
        let query: PostgresQuery

        init(_ values: Values) { query = Self.query(values) }

        static func query(_ v: Values) -> PostgresQuery {
            """
            WITH \(claiming: v.claim), events AS (
                INSERT INTO saga_events (order_id, seq, body)
                SELECT \(v.orderId), s, b::jsonb FROM unnest(\(v.eventSeqs)::int4[], \(v.eventBodies)::text[]) AS e(s, b)
            ), history AS (
                INSERT INTO saga_history (saga_id, step, kind, attempt, detail, duration_ms)
                SELECT \(v.sagaId), st, k, a, NULLIF(d, ''), NULLIF(ms, -1)
                FROM unnest(\(v.history.steps)::text[], \(v.history.kinds)::text[], \(v.history.attempts)::int4[],
                            \(v.history.details)::text[], \(v.history.durations)::int4[]) WITH ORDINALITY AS h(st, k, a, d, ms, n)
                ORDER BY n
            ), saga AS (
                UPDATE sagas SET status = \(v.status), phase = \(v.phase), step = \(v.step)::text,
                    attempt = \(v.attempt), timer_at = \(v.timerAt)::timestamptz, instance = \(v.instance)::jsonb,
                    event_seq = \(v.eventSeq), updated_at = now()
                WHERE id = \(v.sagaId)
            ), queued AS (\(insertOutbox: v.outbox) ORDER BY n RETURNING \(unescaped: Outbox.returnedColumns))
            SELECT * FROM queued UNION ALL \(duplicateMarker: v.claim)
            """
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    private func count(_ status: StatusEvent.Status) {
        switch status {
        case .success: Self.completed.increment()
        case .failed: Self.compensated.increment()
        case .needsAttention: Self.parked.increment()
        default: break
        }
    }

    static func encode(_ saga: SagaInstance<PlaceOrderData>) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(saga), as: UTF8.self)
    }

    static func decode(_ json: String) throws -> SagaInstance<PlaceOrderData> {
        try JSONDecoder().decode(SagaInstance<PlaceOrderData>.self, from: Data(json.utf8))
    }
}

extension StatusEvent.Status {
    var isFinalStatus: Bool { self == .success || self == .failed }
}

/// History lines as column arrays for one multi-row insert; a missing detail or duration travels as '' or -1.
struct HistoryRows {
    var steps: [String] = []
    var kinds: [String] = []
    var attempts: [Int32] = []
    var details: [String] = []
    var durations: [Int32] = []

    mutating func append(_ entry: SagaHistoryEntry) {
        steps.append(entry.step)
        kinds.append(entry.kind.rawValue)
        attempts.append(Int32(clamping: entry.attempt))
        details.append(entry.detail ?? "")
        durations.append(entry.durationMs.map { Int32(clamping: $0) } ?? -1)
    }
}

// MARK: The operator's views and retry (`OperatorController`)

extension SagaStore {
    /// A saga as the monitor lists it.
    struct Summary: Codable, Sendable {
        var sagaId: String
        var orderId: String
        var status: SagaStatus
        var phase: SagaPhase
        var step: String?
        var attempt: Int
        var createdAt: String
        var updatedAt: String
        var ageSeconds: Double
    }

    /// One line of a saga's timeline.
    struct HistoryLine: Codable, Sendable {
        var at: String
        var step: String
        var kind: String
        var attempt: Int
        var detail: String?
        var durationMs: Int?
    }

    /// What `summaries` selects; a nil field (and `olderThanSeconds` 0) matches every saga.
    struct Filter: Sendable {
        var status: SagaStatus?
        var orderId: String?
        var step: String?
        var olderThanSeconds = 0.0
        var limit = 100
    }

    /// The newest sagas that match `filter`, at most `filter.limit` of them.
    func summaries(_ filter: Filter, client: PostgresClient) async throws -> [Summary] {
        try await summaries(
            """
            SELECT \(unescaped: Self.summaryColumns) FROM sagas
            WHERE (\(filter.status?.rawValue)::text IS NULL OR status = \(filter.status?.rawValue))
              AND (\(filter.orderId)::text IS NULL OR order_id = \(filter.orderId))
              AND (\(filter.step)::text IS NULL OR step = \(filter.step))
              AND (\(filter.olderThanSeconds) <= 0
                   OR updated_at < now() - make_interval(secs => \(filter.olderThanSeconds)))
            ORDER BY created_at DESC LIMIT \(filter.limit)
            """,
            client: client)
    }

    /// How many sagas there are in each status, every status named (0 when none).
    func countsByStatus(client: PostgresClient) async throws -> [String: Int] {
        var counts = Dictionary(uniqueKeysWithValues: SagaStatus.allCases.map { ($0.rawValue, 0) })
        let rows = try await client.query("SELECT status, count(*)::int FROM sagas GROUP BY status", logger: logger)
        for try await (status, count) in rows.decode((String, Int).self) { counts[status] = count }
        return counts
    }

    /// The saga `id` (a saga id or its order's id): its summary, its instance (nil for one that does not load: a
    /// saga parked for that still shows its timeline, which says why) and its timeline.
    func detail(_ id: String, client: PostgresClient) async throws
        -> (summary: Summary, instance: SagaInstance<PlaceOrderData>?, history: [HistoryLine])?
    {
        let summaries = try await summaries(
            "SELECT \(unescaped: Self.summaryColumns) FROM sagas WHERE id = \(id) OR order_id = \(id)", client: client)
        guard let summary = summaries.first else { return nil }
        var instance: SagaInstance<PlaceOrderData>?
        let instances = try await client.query(
            "SELECT instance::text FROM sagas WHERE id = \(summary.sagaId)", logger: logger)
        for try await json in instances.decode(String.self) { instance = try? Self.decode(json) }
        var history: [HistoryLine] = []
        let rows = try await client.query(
            """
            SELECT \(unescaped: Timestamp.sql("at")), step, kind, attempt, detail, duration_ms
            FROM saga_history WHERE saga_id = \(summary.sagaId) ORDER BY id
            """,
            logger: logger)
        for try await (at, step, kind, attempt, detail, duration) in rows.decode(
            (String, String, String, Int, String?, Int?).self)
        {
            history.append(
                HistoryLine(at: at, step: step, kind: kind, attempt: attempt, detail: detail, durationMs: duration))
        }
        return (summary, instance, history)
    }

    /// The status events of an order, in `seq` order: what its client was (or will be) sent.
    func statusEvents(orderId: String, client: PostgresClient) async throws -> [StatusEvent] {
        var result: [StatusEvent] = []
        let rows = try await client.query(
            "SELECT body::text FROM saga_events WHERE order_id = \(orderId) ORDER BY seq", logger: logger)
        for try await body in rows.decode(String.self) {
            result.append(try MessageCodec.decode(StatusEvent.self, from: Array(body.utf8)))
        }
        return result
    }

    /// Locks the saga `id` (a saga id or its order's id) for the transaction; its id and status, nil when there is
    /// none.
    func lock(_ id: String, on connection: PostgresConnection) async throws -> (sagaId: String, status: SagaStatus)? {
        let rows = try await connection.query(
            "SELECT id, status FROM sagas WHERE id = \(id) OR order_id = \(id) FOR UPDATE", logger: logger)
        for try await (sagaId, status) in rows.decode((String, String).self) {
            return (sagaId, try Self.status(status, of: sagaId))
        }
        return nil
    }

    private static let summaryColumns = """
        id, order_id, status, phase, step, attempt, \(Timestamp.sql("created_at")), \(Timestamp.sql("updated_at")),
        extract(epoch FROM now() - updated_at)::float8
        """

    private func summaries(_ query: PostgresQuery, client: PostgresClient) async throws -> [Summary] {
        var result: [Summary] = []
        let rows = try await client.query(query, logger: logger)
        for try await (id, orderId, status, phase, step, attempt, created, updated, age)
            in rows.decode((String, String, String, String, String?, Int, String, String, Double).self)
        {
            guard let phase = SagaPhase(rawValue: phase) else {
                throw SagaStoreError("saga \(id) has the unknown phase \(phase)")
            }
            result.append(
                Summary(
                    sagaId: id, orderId: orderId, status: try Self.status(status, of: id), phase: phase, step: step,
                    attempt: attempt, createdAt: created, updatedAt: updated, ageSeconds: age))
        }
        return result
    }

    private static func status(_ text: String, of sagaId: String) throws -> SagaStatus {
        guard let status = SagaStatus(rawValue: text) else {
            throw SagaStoreError("saga \(sagaId) has the unknown status \(text)")
        }
        return status
    }
}

/// A saga row the store cannot read (a column no version of the code writes).
struct SagaStoreError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
