import AMQP
import Foundation
import Logging
import Persistence

/// Reads settings from environment variables, with the defaults the README documents.
public struct Environment: Sendable {
    private let values: [String: String]

    public init(_ values: [String: String] = ProcessInfo.processInfo.environment) {
        self.values = values
    }

    public func string(_ name: String, default defaultValue: String) -> String {
        values[name].flatMap { $0.isEmpty ? nil : $0 } ?? defaultValue
    }

    public func optionalString(_ name: String) -> String? {
        values[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    public func int(_ name: String, default defaultValue: Int) throws -> Int {
        guard let text = optionalString(name) else { return defaultValue }
        guard let value = Int(text) else { throw ConfigurationError("\(name) must be a whole number, got \(text)") }
        return value
    }

    public func double(_ name: String, default defaultValue: Double) throws -> Double {
        guard let text = optionalString(name) else { return defaultValue }
        guard let value = Double(text) else { throw ConfigurationError("\(name) must be a number, got \(text)") }
        return value
    }

    public func required(_ name: String, _ why: String) throws -> String {
        guard let value = optionalString(name) else { throw ConfigurationError("\(name) is not set: \(why)") }
        return value
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The settings every service shares: where it listens, its database, the broker, how much it logs.
public struct ServiceConfiguration: Sendable {
    public var name: String
    public var httpHost: String
    public var httpPort: Int
    public var database: DatabaseConfiguration?
    public var amqp: AMQPConfiguration
    public var logLevel: Logger.Level
    public var environment: Environment

    /// - Parameters:
    ///   - defaultDatabase: the service's database (and role) name; nil for a service without one.
    public init(name: String, defaultPort: Int, defaultDatabase: String?, environment: Environment = Environment())
        throws
    {
        self.name = name
        self.environment = environment
        httpHost = environment.string("PETS_HTTP_HOST", default: "127.0.0.1")
        httpPort = try environment.int("PETS_HTTP_PORT", default: defaultPort)
        if let defaultDatabase {
            let databaseName = environment.string("PETS_DB_NAME", default: defaultDatabase)
            database = DatabaseConfiguration(
                host: environment.string("PETS_PG_HOST", default: "127.0.0.1"),
                port: try environment.int("PETS_PG_PORT", default: 5432),
                user: environment.string("PETS_DB_USER", default: databaseName),
                password: environment.optionalString("PETS_DB_PASSWORD"),
                database: databaseName)
        }
        // PETS_AMQP_URLS (comma separated, one per cluster node) wins over PETS_AMQP_URL (one node).
        let urls = environment.optionalString("PETS_AMQP_URLS").map {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        let heartbeat = try environment.int("PETS_AMQP_HEARTBEAT_SECONDS", default: 10)
        guard (0...3600).contains(heartbeat) else {
            throw ConfigurationError("PETS_AMQP_HEARTBEAT_SECONDS must be between 0 and 3600, got \(heartbeat)")
        }
        amqp = try AMQPConfiguration(
            urls: urls.flatMap { $0.isEmpty ? nil : $0 }
                ?? [environment.string("PETS_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672/")],
            connectionName: name, heartbeatSeconds: heartbeat)
        let level = environment.string("LOG_LEVEL", default: "info").lowercased()
        guard let parsed = Logger.Level(rawValue: level) else {
            throw ConfigurationError(
                "LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical; got \(level)")
        }
        logLevel = parsed
    }
}
