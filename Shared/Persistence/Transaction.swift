import Logging
import PostgresNIO

extension PostgresClient {
    /// `withTransaction`, rethrowing what the closure threw rather than PostgresNIO's wrapper, so callers can tell
    /// their own errors (a malformed message, a conflict) from the database's.
    public func transaction<Result>(
        logger: Logger,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        do {
            return try await withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if let closureError = error.closureError { throw closureError }
            if let beginError = error.beginError { throw beginError }
            if let commitError = error.commitError { throw commitError }
            throw error
        }
    }
}
