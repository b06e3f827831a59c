import AMQP
import Logging
import PostgresNIO
import Synchronization

/// The inbox claim of one message, made by the last statement of the transaction that applies it rather than by a
/// statement of its own: a message then costs one round trip less. The claim is made in the same transaction as
/// the message's effects, as a claim made first would be; what changes is what a repeat costs: its handler runs
/// against state that already has the effects (every handler is idempotent), the claim finds the id, the statement
/// says so (`DuplicateMessage`) and the transaction is rolled back.
///
/// A statement takes a claim in with `\(claiming: claim)` (common table expressions, after its `WITH`) and
/// `\(duplicateMarker: claim)` (a row that only a repeat returns); a statement built with `nil` claims nothing, so
/// a prepared statement's text is the same either way. A claim no statement took in is made by
/// `Outbox.enqueue(_:claiming:on:logger:)` at the end of the transaction.
public final class InboxClaim: Sendable {
    let messageIDs: [String]
    let types: [String]
    /// Sent outbox rows the claiming statement deletes (see `OutboxRelay.takeSent()`).
    let sent: [OutboxRowID]
    private let taken = Mutex(false)

    public convenience init(messageID: String, type: String, deleting sent: [OutboxRowID] = []) {
        self.init([(messageID, type)], deleting: sent)
    }

    /// The claim of several messages (id, type), as `Inbox.claim` makes it first in a batch's transaction.
    public init(_ messages: [(id: String, type: String)], deleting sent: [OutboxRowID] = []) {
        messageIDs = messages.map(\.id)
        types = messages.map(\.type)
        self.sent = sent
    }

    /// Whether a statement has taken the claim in.
    public var isTaken: Bool { taken.withLock { $0 } }

    fileprivate func take() { taken.withLock { $0 = true } }
}

/// The message was applied before: the inbox has its id. The transaction that found it out must be rolled back.
public struct DuplicateMessage: Error {}

extension PostgresQuery.StringInterpolation {
    /// `sent AS (DELETE ...), claimed AS (INSERT INTO inbox ...)`: the claim as common table expressions, to follow a
    /// statement's `WITH`; with `nil`, they delete and claim nothing.
    public mutating func appendInterpolation(claiming claim: InboxClaim?) {
        claim?.take()
        appendLiteral("sent AS (")
        appendInterpolation(deletingSent: claim?.sent ?? [])
        appendLiteral("), claimed AS (INSERT INTO inbox (message_id, message_type) SELECT m, t FROM unnest(")
        appendInterpolation(claim?.messageIDs ?? [])
        appendLiteral("::text[], ")
        appendInterpolation(claim?.types ?? [])
        appendLiteral("::text[]) AS c(m, t) ON CONFLICT (message_id) DO NOTHING RETURNING message_id)")
    }

    /// `SELECT NULL, NULL WHERE ...`: one row of NULLs when the statement claimed a message and the inbox had it
    /// already (for `UNION ALL` after a statement's `Outbox.returnedColumns` rows; see `OutboxRows.entries(from:messages:)`).
    public mutating func appendInterpolation(duplicateMarker claim: InboxClaim?) {
        appendLiteral("SELECT NULL::int8, NULL::text, NULL::text WHERE cardinality(")
        appendInterpolation(claim?.messageIDs ?? [])
        appendLiteral("::text[]) > 0 AND NOT EXISTS (SELECT 1 FROM claimed)")
    }
}

extension Outbox {
    /// Writes `messages` to the outbox and makes `claim` (unless nil) in one statement; throws `DuplicateMessage`
    /// when the inbox had the message already. Returns the rows written, for `OutboxRelay.send(_:)` after commit.
    public static func enqueue(
        _ messages: [OutgoingMessage], claiming claim: InboxClaim?, on connection: PostgresConnection, logger: Logger
    ) async throws -> [OutboxEntry] {
        guard claim != nil else { return try await enqueue(messages, on: connection, logger: logger) }
        let rows = try OutboxRows(messages)
        return try await OutboxRows.entries(
            from: try await connection.execute(ClaimingInsertStatement(rows, claim: claim), logger: logger),
            messages: messages)
    }

    /// `enqueue(_:claiming:)`'s statement, prepared once per connection.
    struct ClaimingInsertStatement: QueryStatement {
        static let name = "pets_outbox_insert_claiming"
        static let sql = ClaimingInsertStatement(OutboxRows(), claim: nil).query.sql
        typealias Row = (Int64?, String?, String?)
        let query: PostgresQuery

        init(_ rows: OutboxRows, claim: InboxClaim?) {
            query = """
                WITH \(claiming: claim), queued AS (\(insertOutbox: rows) ORDER BY n RETURNING \(unescaped: Outbox.returnedColumns))
                SELECT * FROM queued UNION ALL \(duplicateMarker: claim)
                """
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }
}

extension OutboxRows {
    /// Pairs the `Outbox.returnedColumns` rows a claiming statement returned with the messages; throws
    /// `DuplicateMessage` at its marker row (`\(duplicateMarker:)`).
    public static func entries<Rows: AsyncSequence>(from rows: Rows, messages: [OutgoingMessage]) async throws
        -> [OutboxEntry] where Rows.Element == (Int64?, String?, String?)
    {
        var written: [String: OutboxRowID] = [:]
        var duplicate = false
        for try await (id, tid, messageID) in rows {
            if let id, let tid, let messageID {
                written[messageID] = OutboxRowID(id: id, tid: tid)
            } else {
                duplicate = true
            }
        }
        if duplicate { throw DuplicateMessage() }
        return messages.compactMap { outgoing in
            written[outgoing.message.messageID].map { OutboxEntry(row: $0, outgoing: outgoing) }
        }
    }
}
