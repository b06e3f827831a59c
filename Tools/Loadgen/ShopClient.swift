import AsyncHTTPClient
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore

/// The kinds of order the load mixes, and the final status each must reach.
enum OrderKind: String, CaseIterable, Sendable {
    case good, expiredCard, quantity11

    var expectedFinal: String { self == .good ? "success" : "failed" }
}

struct CatalogueItem: Decodable, Sendable {
    var id: String
    var title: String
    var unitPrice: Double
}

/// Builds order bodies as the seed's shop sends them.
struct OrderFactory: Sendable {
    let catalogue: [CatalogueItem]
    let weights: [Double]

    func nextKind() -> OrderKind {
        var pick = Double.random(in: 0..<weights.reduce(0, +))
        for (kind, weight) in zip(OrderKind.allCases, weights) {
            if pick < weight { return kind }
            pick -= weight
        }
        return .good
    }

    func body(_ kind: OrderKind) -> [UInt8] {
        var lines: [[String: Any]] = []
        switch kind {
        case .quantity11:
            lines = [["id": catalogue.randomElement()!.id, "quantity": 11]]
        default:
            for item in catalogue.shuffled().prefix(Int.random(in: 1...2)) {
                lines.append(["id": item.id, "title": item.title, "quantity": Int.random(in: 1...2)])
            }
        }
        let body: [String: Any] = [
            "basket": lines,
            "shippingAddress": [
                "address": "123 Some Street", "city": "Seoul", "postCode": "288\(Int.random(in: 0...9))",
            ],
            "paymentDetail": [
                "cardNumber": "4111 1111 1111 1111", "cardholderName": "Load Test",
                "expiry": kind == .expiredCard ? "12/19" : "12/30", "ccv": "123",
            ],
        ]
        return Array(try! JSONSerialization.data(withJSONObject: body))
    }
}

/// The REST and WebSocket side of one order.
struct ShopClient: Sendable {
    let http: HTTPClient
    let baseURL: String
    let logger: Logger

    func catalogue() async throws -> [CatalogueItem] {
        let response = try await http.execute(HTTPClientRequest(url: "\(baseURL)/catalogue"), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return try JSONDecoder().decode([CatalogueItem].self, from: Data(body.readableBytesView))
    }

    struct Placed: Decodable {
        var orderId: String
        var clientCallbackUrl: String
    }

    /// Places one order and follows it to its final message; records the outcome in `results`.
    func placeAndFollow(
        _ body: [UInt8], kind: OrderKind, intendedStart: ContinuousClock.Instant, timeout: Double, results: Results
    ) async {
        let started = ContinuousClock.now
        let placed: Placed
        do {
            var request = HTTPClientRequest(url: "\(baseURL)/orders")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Idempotency-Key", value: UUID().uuidString)
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await http.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            let responseBody = try await response.body.collect(upTo: 1 << 16)
            guard response.status == .accepted else {
                results.error(
                    "POST /orders answered \(response.status.code): \(String(decoding: responseBody.readableBytesView.prefix(200), as: UTF8.self))"
                )
                return
            }
            placed = try JSONDecoder().decode(Placed.self, from: Data(responseBody.readableBytesView))
        } catch {
            results.error("POST /orders failed: \(error)")
            return
        }
        results.posted(latency: ContinuousClock.now - started)

        let final = FinalMessage()
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await WebSocketClient.connect(url: placed.clientCallbackUrl, logger: logger) { inbound, _, _ in
                        for try await message in inbound.messages(maxSize: 1 << 16) {
                            guard case .text(let text) = message,
                                let event = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                                let status = event["status"] as? String
                            else { continue }
                            if status == "success" || status == "failed" {
                                final.set(status)
                                return
                            }
                        }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(timeout))
                    throw CancellationError()
                }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            if final.value == nil {
                results.error("order \(placed.orderId): no final message within \(timeout) s (\(error))")
                return
            }
        }
        guard let status = final.value else {
            results.error("order \(placed.orderId): the WebSocket closed before the final message")
            return
        }
        guard status == kind.expectedFinal else {
            results.error("order \(placed.orderId) (\(kind.rawValue)) ended \(status), expected \(kind.expectedFinal)")
            return
        }
        results.finished(orderId: placed.orderId, kind: kind, latency: ContinuousClock.now - intendedStart)
    }
}

/// The final status seen by a WebSocket handler.
final class FinalMessage: @unchecked Sendable {
    // @unchecked Sendable: `status` is only touched under `lock`.
    private let lock = NSLock()
    private var status: String?

    func set(_ value: String) { lock.withLock { status = value } }
    var value: String? { lock.withLock { status } }
}
