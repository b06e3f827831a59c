import AsyncHTTPClient
import Foundation
import Messaging
import NIOCore
import ServiceKit

/// Fetches an order's recorded status events from the Orchestrator, which numbers and stores every one.
struct EventHistory: Sendable {
    let orchestratorURL: String
    /// The Orchestrator gives an order's events to whoever holds that order's WebSocket token.
    let tokens: OrderToken
    var http: HTTPClient = .shared

    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    func events(for orderId: String) async throws -> [StatusEvent] {
        var request = HTTPClientRequest(url: "\(orchestratorURL)/orders/\(orderId)/events")
        request.headers.add(name: "Authorization", value: "Bearer \(tokens.token(for: orderId))")
        let response = try await http.execute(request, timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw Unavailable(description: "the orchestrator answered \(response.status.code)")
        }
        return try JSONDecoder().decode([StatusEvent].self, from: Data(body.readableBytesView))
    }
}
