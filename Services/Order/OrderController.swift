import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Messaging
import NIOCore
import Persistence
import PostgresNIO
import ServiceKit

/// The order gateway's REST API: the catalogue, placing orders, reading one order, streaming all of them.
struct OrderController: Sendable {
    let repository: OrderRepository
    let tokens: OrderToken
    /// `GET /orders` streams every customer's order and address: an operator view.
    let credential: OperatorCredential
    /// Woken after an order commits, so its saga starts without waiting for the relay's poll.
    let relay: OutboxRelay
    /// The Notifier's public WebSocket base URL, e.g. `ws://localhost:8081`.
    let publicWebSocketURL: String
    let logger: Logger
    static let maximumBodySize = 64 * 1024

    struct PlacedResponse: Codable {
        var status = OrderStatus.placed
        var orderId: String
        var clientCallbackUrl: String
    }

    func addRoutes(to router: Router<some RequestContext>) {
        router.get("catalogue") { _, _ -> Response in
            try .json(try await repository.catalogue())
        }
        router.post("orders") { request, context -> Response in
            try await place(request, context: context)
        }
        // The seed's path.
        router.post("order") { request, context -> Response in
            try await place(request, context: context)
        }
        router.get("orders/:orderId") { _, context -> Response in
            let orderId = try context.parameters.require("orderId").lowercased()
            guard let order = try await repository.order(orderId) else {
                throw HTTPError(.notFound, message: "No order with id \(orderId).")
            }
            return try .json(order)
        }
        router.group().add(middleware: OperatorAuthMiddleware(credential)).get("orders") { request, _ -> Response in
            streamOrders(eventStream: request.headers[.accept]?.contains("text/event-stream") == true)
        }
    }

    private func place(_ request: Request, context: some RequestContext) async throws -> Response {
        var request = request
        let bytes: [UInt8]
        do {
            bytes = Array(buffer: try await request.collectBody(upTo: Self.maximumBodySize))
        } catch {
            throw HTTPError(
                .contentTooLarge, message: "Request body too large (at most \(Self.maximumBodySize) bytes).")
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw HTTPError(.badRequest, message: "Malformed order: the body is not valid UTF-8.")
        }
        let body: PlaceOrderBody
        do {
            body = try JSONDecoder().decode(PlaceOrderBody.self, from: Data(bytes))
        } catch {
            throw HTTPError(.badRequest, message: "Malformed order: \(Self.describe(error))")
        }
        let order: ValidOrder
        do {
            order = try OrderValidation.validate(body, catalogue: try await repository.products())
        } catch let error as OrderValidationError {
            throw HTTPError(.badRequest, message: error.message)
        }
        let idempotencyKey = request.headers[.idempotencyKey]
        if let idempotencyKey, idempotencyKey.count > 200 || idempotencyKey.isEmpty {
            throw HTTPError(.badRequest, message: "Idempotency-Key must be 1 to 200 characters.")
        }
        let traceparent = request.headers[.traceparent].flatMap(TraceContext.validated) ?? TraceContext.newTraceparent()
        do {
            let placed = try await repository.place(
                order, idempotencyKey: idempotencyKey,
                requestHash: OrderRepository.hash(try MessageCodec.encode(order)), traceparent: traceparent)
            relay.send(placed.outbox)
            var logger = logger
            logger[metadataKey: "orderId"] = "\(placed.orderId)"
            logger.info(placed.created ? "order placed" : "order returned for a repeated idempotency key")
            let url = "\(publicWebSocketURL)/ws?orderId=\(placed.orderId)&token=\(tokens.token(for: placed.orderId))"
            return try .json(PlacedResponse(orderId: placed.orderId, clientCallbackUrl: url), status: .accepted)
        } catch is OrderRepository.IdempotencyConflict {
            throw HTTPError(
                .unprocessableContent, message: "This Idempotency-Key was used for a different order request.")
        }
    }

    /// Streams every order from the database in pages as the client reads them: NDJSON, or server-sent events.
    /// Each page is a short keyset query (`(created_on, id) > last`), written before the next is asked for, so the
    /// first bytes leave at once whatever the count, memory stays flat, and when the client goes away the write
    /// fails and no further query runs.
    private func streamOrders(eventStream: Bool) -> Response {
        let repository = self.repository
        let body = ResponseBody { writer in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var after: (createdOn: String, id: String)?
            while true {
                let page = try await repository.ordersPage(after: after, limit: Self.streamPageSize)
                var buffer = ByteBuffer()
                for (order, key) in page {
                    if eventStream { buffer.writeString("data: ") }
                    buffer.writeBytes(try encoder.encode(order))
                    buffer.writeString(eventStream ? "\n\n" : "\n")
                    after = key
                }
                if buffer.readableBytes > 0 { try await writer.write(buffer) }
                if page.count < Self.streamPageSize { break }
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: eventStream ? "text/event-stream" : "application/x-ndjson"],
            body: body)
    }

    static let streamPageSize = 500

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.typeMismatch(let type, let context):
            return "\(path(context.codingPath)) must be \(typeName(type))."
        case DecodingError.valueNotFound(let type, let context):
            return "\(path(context.codingPath)) must be \(typeName(type)), not null."
        case DecodingError.keyNotFound(let key, _):
            return "missing field \(key.stringValue)."
        case DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty
                ? "the body is not valid JSON." : "\(path(context.codingPath)) is invalid."
        default:
            return "the body is not valid JSON."
        }
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        let text = codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return text.hasPrefix(".") ? String(text.dropFirst()) : (text.isEmpty ? "the body" : text)
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: return "a whole number"
        case is String.Type: return "a string"
        case is [Any].Type: return "an array"
        default: return type is any Decodable.Type && "\(type)".hasPrefix("Array") ? "an array" : "an object"
        }
    }
}

/// W3C trace context: the `traceparent` of a request, or a new one, travels with every message of the order.
enum TraceContext {
    static func newTraceparent() -> String {
        "00-\(randomHex(16))-\(randomHex(8))-01"
    }

    static func validated(_ value: String) -> String? {
        let parts = value.split(separator: "-")
        guard parts.count == 4, parts[0].count == 2, parts[1].count == 32, parts[2].count == 16, parts[3].count == 2,
            parts.allSatisfy({ $0.allSatisfy(\.isHexDigit) })
        else { return nil }
        return value.lowercased()
    }

    private static func randomHex(_ bytes: Int) -> String {
        Hex.encode((0..<bytes).map { _ in UInt8.random(in: 0...255) })
    }
}

extension HTTPField.Name {
    static let idempotencyKey = Self("Idempotency-Key")!
    static let traceparent = Self("traceparent")!
}
