/// Where and how to reach the broker.
public struct AMQPConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var vhost: String
    /// The client's name, shown in the broker's connection list.
    public var connectionName: String

    public init(
        host: String = "127.0.0.1",
        port: Int = 5672,
        user: String = "guest",
        password: String = "guest",
        vhost: String = "/",
        connectionName: String = "awsomepets"
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.vhost = vhost
        self.connectionName = connectionName
    }

    /// Parses `amqp://user:password@host:port/vhost`; the vhost defaults to `/` and `%2f` decodes to `/`.
    public init(url: String, connectionName: String = "awsomepets") throws {
        guard url.hasPrefix("amqp://") else {
            throw AMQPError(.invalidConfiguration, "AMQP URL must start with amqp://, got \(url)")
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
                throw AMQPError(.invalidConfiguration, "AMQP URL has a bad port: \(url)")
            }
            port = parsed
        }
        if host.isEmpty { host = "127.0.0.1" }
        self.init(host: host, port: port, user: user, password: password, vhost: vhost, connectionName: connectionName)
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
