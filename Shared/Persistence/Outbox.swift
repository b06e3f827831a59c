import AMQP
import Foundation
import Logging
import Messaging
import NIOCore
import PostgresNIO

/// The transactional outbox: messages are written in the same transaction as the state change that causes them,
/// and the `OutboxRelay` sends them after commit. Nothing is published that was not committed, and nothing committed
/// is lost.
public enum Outbox {
    /// What an insert into the outbox returns, for `OutboxRows.entries(from:messages:)`: the row's id, its place
    /// (see `OutboxRowID`) and its message id.
    public static let returnedColumns = "id, ctid::text, message_id"

    /// Writes `messages` to the outbox in one statement; returns them with their row ids, for
    /// `OutboxRelay.send(_:)` once the transaction has committed.
    @discardableResult
    public static func enqueue(_ messages: [OutgoingMessage], on connection: PostgresConnection, logger: Logger)
        async throws -> [OutboxEntry]
    {
        guard !messages.isEmpty else { return [] }
        let rows = try OutboxRows(messages)
        return try await OutboxRows.entries(
            from: try await connection.execute(InsertStatement(rows), logger: logger), messages: messages)
    }

    /// `enqueue`'s insert, prepared once per connection.
    struct InsertStatement: QueryStatement {
        static let name = "pets_outbox_insert"
        static let sql = InsertStatement(OutboxRows()).query.sql
        typealias Row = (Int64, String, String)
        let query: PostgresQuery

        init(_ rows: OutboxRows) {
            query = "\(insertOutbox: rows) ORDER BY n RETURNING \(unescaped: Outbox.returnedColumns)"
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }
}

/// A committed outbox row: where it is (to delete it once the broker has it) and the message.
public struct OutboxEntry: Sendable {
    public let row: OutboxRowID
    public let outgoing: OutgoingMessage
}

/// An outbox row's key and its place in the table (`ctid`). A sent row is deleted by both (`\(deletingSent:)`): the
/// place makes the deletion a TID scan, one page per row, however stale the planner's idea of this churning table is
/// (by id alone, the cached generic plan read every page of it: a tenth of PostgreSQL's time per saga); the key makes
/// sure a row that moved (`VACUUM FULL`) is left for the poller to send again, never another row deleted.
public struct OutboxRowID: Hashable, Sendable {
    public let id: Int64
    public let tid: String

    public init(id: Int64, tid: String) {
        self.id = id
        self.tid = tid
    }
}

/// Outgoing messages as column arrays, for one multi-row `INSERT ... SELECT FROM unnest(...)`. Optional properties
/// travel as empty strings and are turned back into NULLs by the statement.
public struct OutboxRows: Sendable {
    public var exchanges: [String] = []
    public var routingKeys: [String] = []
    public var messageIDs: [String] = []
    public var types: [String] = []
    public var correlationIDs: [String] = []
    public var replyTos: [String] = []
    public var headers: [String] = []
    public var contentTypes: [String] = []
    public var bodies: [ByteBuffer] = []

    public init() {}

    public init(_ messages: [OutgoingMessage]) throws {
        for outgoing in messages {
            let message = outgoing.message
            exchanges.append(outgoing.exchange)
            routingKeys.append(outgoing.routingKey)
            messageIDs.append(message.messageID)
            types.append(message.type)
            correlationIDs.append(message.correlationID ?? "")
            replyTos.append(message.replyTo ?? "")
            headers.append(String(decoding: try MessageCodec.encode(message.headers), as: UTF8.self))
            contentTypes.append(message.contentType)
            bodies.append(ByteBuffer(bytes: message.body))
        }
    }

    /// Pairs the `Outbox.returnedColumns` rows (id, place, message id) an insert returned with the messages.
    public static func entries<Rows: AsyncSequence>(from rows: Rows, messages: [OutgoingMessage]) async throws
        -> [OutboxEntry] where Rows.Element == (Int64, String, String)
    {
        try await entries(
            from: rows.map { row -> (Int64?, String?, String?) in (row.0, row.1, row.2) }, messages: messages)
    }
}

extension PostgresQuery.StringInterpolation {
    /// `INSERT INTO outbox (...) SELECT ... FROM unnest(...) AS o(..., n)` for `rows`, `n` numbering them in order;
    /// the caller adds what follows (`WHERE`, `ORDER BY n`, `RETURNING \(unescaped: Outbox.returnedColumns)`). A fragment, so a statement
    /// can write its outbox rows beside other changes (a CTE) in one round trip.
    public mutating func appendInterpolation(insertOutbox rows: OutboxRows) {
        appendLiteral(
            """
            INSERT INTO outbox (exchange, routing_key, message_id, type, correlation_id, reply_to, headers,
                                content_type, body)
            SELECT e, r, m, t, NULLIF(c, ''), NULLIF(p, ''), h::jsonb, ct, b
            FROM unnest(
            """)
        let textColumns = [
            rows.exchanges, rows.routingKeys, rows.messageIDs, rows.types, rows.correlationIDs, rows.replyTos,
            rows.headers, rows.contentTypes,
        ]
        for values in textColumns {
            appendInterpolation(values)
            appendLiteral("::text[], ")
        }
        appendInterpolation(rows.bodies)
        appendLiteral("::bytea[]) WITH ORDINALITY AS o(e, r, m, t, c, p, h, ct, b, n)")
    }

    /// `DELETE FROM outbox WHERE ...` of the sent rows `rows` (see `OutboxRowID`).
    public mutating func appendInterpolation(deletingSent rows: [OutboxRowID]) {
        appendLiteral("DELETE FROM outbox WHERE ctid = ANY(")
        appendInterpolation(rows.map(\.tid))
        appendLiteral("::text[]::tid[]) AND id = ANY(")
        appendInterpolation(rows.map(\.id))
        appendLiteral("::int8[])")
    }
}

/// The inbox: a consumer records each message id in the transaction that applies the message, so a redelivered
/// message is recognised and skipped.
public enum Inbox {
    /// Claims the message ids of `messages` (id, type) in one statement and returns those that are new: the rest
    /// were handled before (or appear twice in `messages`), and the transaction should leave them alone.
    /// `deleting`: sent outbox rows to delete in the same statement (see `OutboxRelay.takeSent()`), so their
    /// deletion costs no round trip of its own.
    public static func claim(
        _ messages: [(id: String, type: String)], deleting sent: [OutboxRowID] = [], on connection: PostgresConnection,
        logger: Logger
    ) async throws -> Set<String> {
        let rows = try await connection.execute(
            ClaimStatement(InboxClaim(messages, deleting: sent)), logger: logger)
        var claimed = Set<String>()
        for try await id in rows { claimed.insert(id) }
        return claimed
    }

    /// `claim`'s statement, prepared once per connection: the claim's CTEs, and the ids they inserted.
    struct ClaimStatement: QueryStatement {
        static let name = "pets_inbox_claim_many"
        static let sql = ClaimStatement(nil).query.sql
        typealias Row = String
        let query: PostgresQuery

        init(_ claim: InboxClaim?) { query = "WITH \(claiming: claim) SELECT message_id FROM claimed" }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(String.self) }
    }
}

extension OutgoingMessage {
    /// A new message with a fresh id.
    public static func make<Body: Encodable>(
        exchange: String = "",
        routingKey: String,
        type: String,
        correlationID: String? = nil,
        replyTo: String? = nil,
        headers: [String: String] = [:],
        body: Body
    ) throws -> OutgoingMessage {
        OutgoingMessage(
            exchange: exchange,
            routingKey: routingKey,
            message: AMQPMessage(
                messageID: UUID().uuidString.lowercased(),
                correlationID: correlationID,
                type: type,
                replyTo: replyTo,
                headers: headers,
                body: try MessageCodec.encode(body)
            ))
    }
}
