import Logging
import PostgresNIO

/// Where a service's own database is, and the role it logs in as.
public struct DatabaseConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String

    public init(host: String, port: Int, user: String, password: String?, database: String) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// A pooled, non-blocking client; it is a `Service`: run it in the service group before anything queries.
    public func makeClient(maximumConnections: Int = 20, logger: Logger) -> PostgresClient {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: .disable)
        configuration.options.maximumConnections = maximumConnections
        configuration.options.minimumConnections = 2
        configuration.options.connectionIdleTimeout = .seconds(300)
        return PostgresClient(configuration: configuration, backgroundLogger: logger)
    }
}
