import AMQP
import Foundation
import Logging
import Persistence

/// Reads settings from environment variables, with the defaults the README documents. (Named so as not to shadow
/// Hummingbird's `Environment`, which every service also imports.)
public struct ServiceEnvironment: Sendable {
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
    /// Idle timeout and body size limit of the service's HTTP server.
    public var httpLimits: HTTPLimits
    public var environment: ServiceEnvironment

    /// - Parameters:
    ///   - defaultDatabase: the service's database (and role) name; nil for a service without one.
    public init(
        name: String, defaultPort: Int, defaultDatabase: String?, environment: ServiceEnvironment = ServiceEnvironment()
    )
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
                password: try environment.secret(
                    "PETS_DB_PASSWORD", minimumBytes: SecretPolicy.passwordBytes,
                    "the password of database role \(databaseName)"),
                database: databaseName)
        }
        amqp = try Self.amqp(environment, connectionName: name)
        httpLimits = try HTTPLimits(environment: environment)
        let level = environment.string("LOG_LEVEL", default: "info").lowercased()
        guard let parsed = Logger.Level(rawValue: level) else {
            throw ConfigurationError(
                "LOG_LEVEL must be one of trace, debug, info, notice, warning, error, critical; got \(level)")
        }
        logLevel = parsed
    }

    /// The broker settings from `PETS_AMQP_URL`. The URL holds the service's broker password, so no error here
    /// repeats it: they name the variable and show the URL with the password masked.
    /// The broker: `PETS_AMQP_URLS` (one URL per cluster node, comma separated) wins over `PETS_AMQP_URL` (one
    /// node); `PETS_AMQP_HEARTBEAT_SECONDS` (default 10) sets the heartbeat interval.
    static func amqp(_ environment: ServiceEnvironment, connectionName: String) throws -> AMQPConfiguration {
        let list = (environment.optionalString("PETS_AMQP_URLS") ?? "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let variable = list.isEmpty ? "PETS_AMQP_URL" : "PETS_AMQP_URLS"
        let urls =
            list.isEmpty ? [environment.string("PETS_AMQP_URL", default: "amqp://guest:guest@127.0.0.1:5672/")] : list
        let heartbeat = try environment.int("PETS_AMQP_HEARTBEAT_SECONDS", default: 10)
        guard (0...3600).contains(heartbeat) else {
            throw ConfigurationError("PETS_AMQP_HEARTBEAT_SECONDS must be between 0 and 3600, got \(heartbeat)")
        }
        let configuration: AMQPConfiguration
        do {
            configuration = try AMQPConfiguration(
                urls: urls, connectionName: connectionName, heartbeatSeconds: heartbeat)
        } catch {
            throw ConfigurationError(
                "\(variable) is not a valid list of amqp://user:password@host:port/vhost URLs sharing one user: "
                    + urls.map(Self.masked).joined(separator: ","))
        }
        // `guest` can only log in over loopback (RabbitMQ's default); any other user needs a real password.
        if configuration.user != "guest",
            let problem = SecretPolicy.problem(
                "the password in \(variable)", configuration.password, minimumBytes: SecretPolicy.passwordBytes)
        {
            throw ConfigurationError("\(problem) (broker user \(configuration.user))")
        }
        return configuration
    }

    /// The URL with whatever stands between `://user:` and `@` replaced, for messages and logs.
    public static func masked(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return "(not a URL)" }
        guard let at = url.range(of: "@", options: .backwards), at.lowerBound > scheme.upperBound else {
            // No credentials: show it if it reads as host[:port][/vhost], otherwise hide all but the scheme.
            let authority = url[scheme.upperBound...].prefix { $0 != "/" }
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            let plain = parts.count == 1 || (parts.count == 2 && parts[1].allSatisfy(\.isNumber))
            return plain && url.count <= 200 ? url : url[..<scheme.upperBound] + "***"
        }
        let credentials = url[scheme.upperBound..<at.lowerBound]
        let user = credentials.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
        return url[..<scheme.upperBound] + user + ":***" + url[at.lowerBound...]
    }
}

/// The start of every service's `main`: a configuration that cannot be used ends the process with one line
/// naming the variable (exit status 78, EX_CONFIG), instead of a crash report.
public enum ServiceMain {
    public static func configured<Value>(_ body: () throws -> Value) -> Value {
        do {
            return try body()
        } catch {
            let text = (error as? ConfigurationError)?.description ?? "\(error)"
            FileHandle.standardError.write(Data("configuration error: \(text)\n".utf8))
            exit(78)
        }
    }
}
