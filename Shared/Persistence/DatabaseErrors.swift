import PostgresNIO

/// Tells failures that pass (the database restarting, a lost connection, a deadlock) from those that do not.
public enum DatabaseErrors {
    public static func isTransient(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError else { return false }
        guard let state = error.serverInfo?[.sqlState] else {
            // No SQLSTATE: the error is about the connection, not the statement.
            return true
        }
        // 08: connection exception, 40: transaction rollback (serialisation, deadlock), 53: insufficient
        // resources, 57: operator intervention (shutdown, cancel), 58: system error.
        return ["08", "40", "53", "57", "58"].contains(String(state.prefix(2)))
    }
}
