import Foundation
import Hummingbird
import NIOCore

/// Named readiness checks behind `GET /health`.
public struct HealthChecks: Sendable {
    public typealias Check = @Sendable () async -> Bool
    let checks: [(String, Check)]

    public init(_ checks: KeyValuePairs<String, Check>) {
        self.checks = checks.map { ($0.key, $0.value) }
    }

    public init(_ checks: [(String, Check)]) {
        self.checks = checks
    }

    public func run() async -> [String: Bool] {
        await withTaskGroup(of: (String, Bool).self) { group in
            for (name, check) in checks {
                group.addTask { (name, await check()) }
            }
            var results: [String: Bool] = [:]
            for await (name, ok) in group { results[name] = ok }
            return results
        }
    }
}

extension Router {
    /// The middleware every service's router starts with: JSON errors, then request metrics (by route and status).
    public func addStandardMiddleware() {
        add(middleware: JSONErrorMiddleware())
        add(middleware: MetricsMiddleware())
    }

    /// Answers the methods a path does not support with `405` and an `Allow` header (RFC 9110), rather than the
    /// router's 404: `paths` maps each route to the methods it has.
    public func refuseOtherMethods(_ paths: [(String, [HTTPRequest.Method])]) {
        let candidates: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch]
        for (path, allowed) in paths {
            let allow = allowed.map(\.rawValue).joined(separator: ", ")
            for method in candidates where !allowed.contains(method) {
                on(RouterPath(path), method: method) { request, _ -> Response in
                    throw HTTPError(
                        .methodNotAllowed, headers: [.allow: allow],
                        message: "\(request.method) is not allowed on \(request.uri.path); use \(allow).")
                }
            }
        }
    }

    /// `GET /health` (200 when every check passes, 503 otherwise, JSON either way) and `GET /metrics` (Prometheus).
    public func addOperationalRoutes(service: String, health: HealthChecks) {
        get("health") { _, _ -> Response in
            let results = await health.run()
            let ready = results.values.allSatisfy { $0 }
            let body: [String: String] =
                ["status": ready ? "ready" : "not ready", "service": service]
                .merging(results.mapValues { $0 ? "ok" : "failing" }) { first, _ in first }
            return try Response.json(body, status: ready ? .ok : .serviceUnavailable)
        }
        get("metrics") { _, _ -> Response in
            var buffer: [UInt8] = []
            Observability.registry.emit(into: &buffer)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        refuseOtherMethods([("health", [.get]), ("metrics", [.get])])
    }
}

extension Response {
    /// A JSON response from any `Encodable`. A body that does not encode throws (the handler's caller answers 503
    /// and logs why) rather than going out as `{}`.
    public static func json<Body: Encodable>(_ body: Body, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(body)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
