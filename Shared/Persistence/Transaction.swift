import Logging
import PostgresNIO

extension PostgresClient {
    /// Runs `body` in a transaction on a leased connection: committed when it returns, rolled back when it throws.
    /// Rethrows what `body` threw (not a wrapper), so callers can tell their own errors (a malformed message, a
    /// conflict) from the database's. `BEGIN`, `COMMIT` and `ROLLBACK` are prepared statements: each connection
    /// parses them once, not twice per message.
    public func transaction<Result>(
        logger: Logger,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        try await withConnection { connection in
            try await connection.run(Begin(), logger: logger)
            let value: Result
            do {
                value = try await body(connection)
            } catch {
                try? await connection.run(Rollback(), logger: logger)
                throw error
            }
            try await connection.run(Commit(), logger: logger)
            return value
        }
    }
}

extension PostgresConnection {
    /// Executes a prepared statement that returns no rows, to its end (errors included). PostgresNIO's
    /// `execute(_:) -> String` overload for such statements trips a precondition with prepared statements.
    public func run<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws
    where Statement.Row == Void {
        for try await _ in try await execute(statement, logger: logger) {}
    }
}

/// Transaction control as prepared statements.
protocol TransactionStatement: PostgresPreparedStatement where Row == Void {}

extension TransactionStatement {
    func makeBindings() -> PostgresBindings { PostgresBindings() }
    func decodeRow(_ row: PostgresRow) throws {}
}

struct Begin: TransactionStatement {
    static let name = "pets_begin"
    static let sql = "BEGIN"
}

struct Commit: TransactionStatement {
    static let name = "pets_commit"
    static let sql = "COMMIT"
}

struct Rollback: TransactionStatement {
    static let name = "pets_rollback"
    static let sql = "ROLLBACK"
}

/// `SET LOCAL synchronous_commit = off`: the transaction's commit does not wait for the disk (for deletions of sent
/// outbox rows, which a crash at worst sends again).
struct AsynchronousCommit: TransactionStatement {
    static let name = "pets_asynchronous_commit"
    static let sql = "SET LOCAL synchronous_commit = off"
}
