import Hummingbird
import Logging
import NIOCore

/// The body of every error response: `{"status":"failed","message":...}` (the seed's shape).
public struct FailureBody: Codable, Sendable {
    public var status = "failed"
    public var message: String

    public init(message: String) {
        self.message = message
    }
}

/// Every error leaves a service as JSON, `{"status":"failed","message":...}`: an unknown route or method, a
/// framework error, or a failure of ours (a database that is restarting answers 503, not a bare 500). Handlers and
/// middleware refuse a request by throwing `HTTPError(status, headers:, message:)`: its message becomes the body's,
/// its headers (`Allow`, `WWW-Authenticate`, ...) are kept.
public struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {

    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let message: String
            switch error.status {
            case .notFound: message = error.body ?? "No route for \(request.method) \(request.uri.path)."
            case .methodNotAllowed: message = error.body ?? "\(request.method) is not allowed on \(request.uri.path)."
            default: message = error.body ?? error.status.reasonPhrase
            }
            var response = try Response.json(FailureBody(message: message), status: error.status)
            response.headers.append(contentsOf: error.headers)
            return response
        } catch let error as any HTTPResponseError {
            return try .json(FailureBody(message: error.status.reasonPhrase), status: error.status)
        } catch {
            context.logger.error(
                "request failed", metadata: ["path": "\(request.uri.path)", "error": "\(String(reflecting: error))"])
            return try .json(
                FailureBody(message: "The service cannot answer right now; try again shortly."),
                status: .serviceUnavailable
            )
        }
    }
}
