@preconcurrency import Crypto
import Foundation
import HTTPTypes
import Hummingbird

/// The operator credential: `Authorization: Bearer <PETS_OPERATOR_TOKEN>`. Everything an operator can see or do
/// (every order, every saga, stock and ledgers, retrying a saga, restocking) asks for it.
public struct OperatorCredential: Sendable {
    /// The token's SHA-256: requests are compared digest to digest, so the time taken says nothing of the token.
    private let digest: [UInt8]

    public init(token: String) {
        digest = Array(SHA256.hash(data: Data(token.utf8)))
    }

    /// Reads `PETS_OPERATOR_TOKEN`, refusing a missing, placeholder or short one.
    public init(environment: ServiceEnvironment, service: String) throws {
        self.init(
            token: try environment.secret(
                "PETS_OPERATOR_TOKEN", minimumBytes: SecretPolicy.tokenBytes,
                "\(service) answers operator requests only with it"))
    }

    /// True when the request carries the operator's bearer token.
    public func accepts(_ request: Request) -> Bool {
        guard let token = Self.bearerToken(request) else { return false }
        let candidate = Array(SHA256.hash(data: Data(token.utf8)))
        var difference: UInt8 = 0
        for (a, b) in zip(candidate, digest) { difference |= a ^ b }
        return difference == 0
    }

    /// The token of an `Authorization: Bearer ...` header, if there is one.
    public static func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }

    /// The 401 every protected route answers without the credential, with the challenge RFC 6750 asks for.
    public static let unauthorized = HTTPError(
        .unauthorized, headers: [.wwwAuthenticate: #"Bearer realm="AWSomePets operator""#],
        message: "This is an operator view: send Authorization: Bearer <PETS_OPERATOR_TOKEN>.")
}

/// Answers 401 to every request of the routes it guards that lacks the operator credential.
public struct OperatorAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let credential: OperatorCredential

    public init(_ credential: OperatorCredential) {
        self.credential = credential
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard credential.accepts(request) else { throw OperatorCredential.unauthorized }
        return try await next(request, context)
    }
}

/// Cross-origin access for the shop's own pages only (the saga monitor reads the Orchestrator's API from the
/// shop's origin). A browser request from any other origin, preflight or not, is refused with 403 before it
/// reaches a handler; requests without an `Origin` (curl, services) pass untouched.
public struct ShopOriginCORSMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowedOrigins: Set<String>
    let allowMethods = "GET, POST, PUT, OPTIONS"
    let allowHeaders = "Authorization, Content-Type, Accept"

    /// - Parameter origins: the shop's origins, e.g. `http://localhost:8080` (paths and trailing slashes ignored).
    public init(origins: [String]) {
        allowedOrigins = Set(origins.compactMap(Self.origin))
    }

    /// Reads `PETS_SHOP_ORIGINS` (comma-separated), by default the shop on localhost:8080.
    public init(environment: ServiceEnvironment) {
        self.init(
            origins: environment.string("PETS_SHOP_ORIGINS", default: "http://localhost:8080,http://127.0.0.1:8080")
                .split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init))
    }

    /// `scheme://host[:port]` of a URL, lowercased; nil when it has none.
    static func origin(_ url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            let host = components.host?.lowercased(), !host.isEmpty
        else { return nil }
        return "\(scheme)://\(host)" + (components.port.map { ":\($0)" } ?? "")
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let isPreflight = request.method == .options && request.headers[.accessControlRequestMethod] != nil
        guard let allowed = Self.origin(origin), allowedOrigins.contains(allowed) else {
            throw HTTPError(
                .forbidden, headers: [.vary: "Origin"],
                message:
                    "Cross-origin requests are accepted from the shop's own origin only, not from \(origin.prefix(200))."
            )
        }
        var response: Response
        if isPreflight {
            response = Response(status: .noContent)
            response.headers[.accessControlAllowMethods] = allowMethods
            response.headers[.accessControlAllowHeaders] = allowHeaders
            response.headers[.accessControlMaxAge] = "600"
        } else {
            do {
                response = try await next(request, context)
            } catch var error as HTTPError {
                // A refusal (401, 404, 409, ...) must be readable by the shop's page too.
                error.headers[.accessControlAllowOrigin] = origin
                error.headers[.vary] = "Origin"
                throw error
            }
        }
        response.headers[.accessControlAllowOrigin] = origin
        response.headers[.vary] = "Origin"
        return response
    }
}
