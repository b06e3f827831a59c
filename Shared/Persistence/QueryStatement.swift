import PostgresNIO

/// A statement prepared once per connection (under `name`) whose SQL and binds come from one interpolated query, as
/// an unnamed query's do: PostgreSQL parses and plans it once per connection instead of once per message. Its SQL
/// must not change with the values (bind arrays, not lists of placeholders): a conformer sets `static let sql` to
/// the SQL of its query built with any values.
public protocol QueryStatement: PostgresPreparedStatement {
    var query: PostgresQuery { get }
}

extension QueryStatement {
    public func makeBindings() -> PostgresBindings { query.binds }
}

extension QueryStatement where Row == Void {
    public func decodeRow(_ row: PostgresRow) throws {}
}
