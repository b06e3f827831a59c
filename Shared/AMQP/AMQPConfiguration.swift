/// Where and how to reach the broker: one node or the nodes of a cluster, tried in turn.
public struct AMQPConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// One broker node.
    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { "\(host):\(port)" }
    }

    /// The nodes, in the order they are tried; a lost connection moves on to the next.
    public var endpoints: [Endpoint]
    public var user: String
    public var password: String
    public var vhost: String
    /// The client's name, shown in the broker's connection list.
    public var connectionName: String
    /// Seconds between heartbeats; a connection that hears nothing for two intervals is dead. 0 turns them off.
    public var heartbeatSeconds: Int
    /// Deadline of the TCP connect and of the AMQP handshake.
    public var connectTimeoutSeconds: Double
    /// Deadline of each synchronous AMQP call (declare, consume, channel open).
    public var rpcTimeoutSeconds: Double

    /// The first node (most configurations have one).
    public var host: String { endpoints[0].host }
    public var port: Int { endpoints[0].port }

    /// Quorum queues are declared with one member per node (0: the broker's default).
    public var quorumReplicas: Int { endpoints.count > 1 ? endpoints.count : 0 }

    public init(
        host: String = "127.0.0.1",
        port: Int = 5672,
        user: String = "guest",
        password: String = "guest",
        vhost: String = "/",
        connectionName: String = "awsomepets",
        heartbeatSeconds: Int = 10
    ) {
        self.init(
            endpoints: [Endpoint(host: host, port: port)], user: user, password: password, vhost: vhost,
            connectionName: connectionName, heartbeatSeconds: heartbeatSeconds)
    }

    public init(
        endpoints: [Endpoint], user: String, password: String, vhost: String = "/",
        connectionName: String = "awsomepets", heartbeatSeconds: Int = 10
    ) {
        precondition(!endpoints.isEmpty, "an AMQP configuration needs at least one endpoint")
        self.endpoints = endpoints
        self.user = user
        self.password = password
        self.vhost = vhost
        self.connectionName = connectionName
        self.heartbeatSeconds = heartbeatSeconds
        connectTimeoutSeconds = 5
        rpcTimeoutSeconds = 10
    }

    /// Parses `amqp://user:password@host:port/vhost`; the vhost defaults to `/` and `%2f` decodes to `/`.
    public init(url: String, connectionName: String = "awsomepets", heartbeatSeconds: Int = 10) throws {
        try self.init(urls: [url], connectionName: connectionName, heartbeatSeconds: heartbeatSeconds)
    }

    /// Parses one URL per cluster node. User, password and vhost must be the same in all of them.
    public init(urls: [String], connectionName: String = "awsomepets", heartbeatSeconds: Int = 10) throws {
        let parsed = try urls.map(Self.parse)
        guard let first = parsed.first else {
            throw AMQPError(.invalidConfiguration, "no AMQP URL given")
        }
        guard parsed.allSatisfy({ $0.user == first.user && $0.password == first.password && $0.vhost == first.vhost })
        else {
            throw AMQPError(.invalidConfiguration, "the AMQP URLs must share user, password and vhost")
        }
        self.init(
            endpoints: parsed.map(\.endpoint), user: first.user, password: first.password, vhost: first.vhost,
            connectionName: connectionName, heartbeatSeconds: heartbeatSeconds)
    }

    /// Names the nodes and the user, never the password.
    public var description: String {
        "amqp://\(user)@\(endpoints.map(\.description).joined(separator: ","))/\(vhost == "/" ? "" : vhost)"
    }

    private static func parse(_ url: String) throws -> (
        endpoint: Endpoint, user: String, password: String, vhost: String
    ) {
        guard url.hasPrefix("amqp://") else {
            // The URL may hold a password: say what is wrong without repeating it.
            throw AMQPError(.invalidConfiguration, "an AMQP URL must start with amqp://")
        }
        var rest = Substring(url.dropFirst("amqp://".count))
        var user = "guest"
        var password = "guest"
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = String(credentials[..<colon]).removingPercentEncodingLossy
                password = String(credentials[credentials.index(after: colon)...]).removingPercentEncodingLossy
            } else {
                user = String(credentials).removingPercentEncodingLossy
            }
        }
        var vhost = "/"
        if let slash = rest.firstIndex(of: "/") {
            let path = String(rest[rest.index(after: slash)...])
            if !path.isEmpty { vhost = path.removingPercentEncodingLossy }
            rest = rest[..<slash]
        }
        var host = String(rest)
        var port = 5672
        if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let parsed = Int(rest[rest.index(after: colon)...]) else {
                throw AMQPError(.invalidConfiguration, "an AMQP URL has a bad port: \(rest)")
            }
            port = parsed
        }
        if host.isEmpty { host = "127.0.0.1" }
        return (Endpoint(host: host, port: port), user, password, vhost)
    }
}

extension String {
    /// Decodes `%XX` escapes; leaves malformed ones as they are.
    fileprivate var removingPercentEncodingLossy: String {
        var bytes: [UInt8] = []
        var iterator = Array(utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
