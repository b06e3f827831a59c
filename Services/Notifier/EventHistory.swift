import Foundation
import Messaging

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Fetches an order's recorded status events from the Orchestrator, which numbers and stores every one.
struct EventHistory: Sendable {
    let orchestratorURL: String

    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    func events(for orderId: String) async throws -> [StatusEvent] {
        guard let url = URL(string: "\(orchestratorURL)/orders/\(orderId)/events") else {
            throw Unavailable(description: "bad orchestrator URL \(orchestratorURL)")
        }
        var request = URLRequest(url: url)
        request.timeoutInterval = 5
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse, http.statusCode == 200 else {
            throw Unavailable(
                description: "the orchestrator answered \((response as? HTTPURLResponse)?.statusCode ?? 0)")
        }
        return try JSONDecoder().decode([StatusEvent].self, from: data)
    }
}
