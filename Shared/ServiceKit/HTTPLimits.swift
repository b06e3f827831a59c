import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// How long a connection may sit idle and how large a request body may be. A client that connects and sends
/// nothing, stops half-way through its request, or keeps a connection open without using it is dropped, so idle
/// sockets cannot pile up; a body over the limit is refused with 413 before it is read.
public struct HTTPLimits: Sendable {
    /// Seconds a connection may stay idle (no request, or a request stalled half-way) before it is closed.
    public var idleTimeout: Double
    /// Largest request body any route reads, in bytes.
    public var maximumBodyBytes: Int

    public init(idleTimeout: Double = 30, maximumBodyBytes: Int = 64 * 1024) {
        self.idleTimeout = idleTimeout
        self.maximumBodyBytes = maximumBodyBytes
    }

    /// `PETS_HTTP_IDLE_TIMEOUT_SECONDS` (default 30) and `PETS_HTTP_MAX_BODY_BYTES` (default 65536).
    public init(environment: ServiceEnvironment) throws {
        let idle = try environment.double("PETS_HTTP_IDLE_TIMEOUT_SECONDS", default: 30)
        guard idle > 0, idle <= 3_600 else {
            throw ConfigurationError("PETS_HTTP_IDLE_TIMEOUT_SECONDS must be more than 0 and at most 3600, got \(idle)")
        }
        let body = try environment.int("PETS_HTTP_MAX_BODY_BYTES", default: 64 * 1024)
        guard body >= 1_024 else {
            throw ConfigurationError("PETS_HTTP_MAX_BODY_BYTES must be at least 1024, got \(body)")
        }
        self.init(idleTimeout: idle, maximumBodyBytes: body)
    }

    public var idleTimeAmount: TimeAmount { .milliseconds(Int64(idleTimeout * 1_000)) }

    /// An HTTP/1.1 server that closes idle connections.
    public var server: HTTPServerBuilder {
        .http1(configuration: .init(idleTimeout: idleTimeAmount))
    }
}

/// Refuses a request whose declared body is over the limit with 413 (and closes the connection, so the body is
/// not read). A chunked body declares no length: the routes that read a body collect it with a limit of their own
/// (`collectBody(upTo:)`), and the idle timeout drops a client that stalls half-way.
public struct RequestSizeLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let maximumBytes: Int

    public init(maximumBytes: Int) {
        self.maximumBytes = maximumBytes
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        if let length = request.headers[.contentLength], let bytes = Int(length), bytes > maximumBytes {
            throw HTTPError(
                .contentTooLarge, headers: [.connection: "close"],
                message: "Request body too large (at most \(maximumBytes) bytes).")
        }
        return try await next(request, context)
    }
}

extension Router {
    /// The standard middleware plus the body size limit.
    public func addStandardMiddleware(limits: HTTPLimits) {
        addStandardMiddleware()
        add(middleware: RequestSizeLimitMiddleware(maximumBytes: limits.maximumBodyBytes))
    }
}
