import AMQP
import Foundation
import Logging
import Messaging
import NIOCore
import PostgresNIO

/// The transactional outbox: messages are written in the same transaction as the state change that causes them,
/// and the `OutboxRelay` sends them after commit. Nothing is published that was not committed, and nothing committed
/// is lost.
public enum Outbox {
    public static func enqueue(_ messages: [OutgoingMessage], on connection: PostgresConnection, logger: Logger)
        async throws
    {
        for outgoing in messages {
            let message = outgoing.message
            let headers = String(decoding: try MessageCodec.encode(message.headers), as: UTF8.self)
            try await connection.query(
                """
                INSERT INTO outbox (exchange, routing_key, message_id, type, correlation_id, reply_to, headers, content_type, body)
                VALUES (\(outgoing.exchange), \(outgoing.routingKey), \(message.messageID), \(message.type),
                        \(message.correlationID), \(message.replyTo), \(headers)::jsonb, \(message.contentType),
                        \(ByteBuffer(bytes: message.body)))
                """,
                logger: logger)
        }
    }
}

/// The inbox: a consumer records each message id in the transaction that applies the message, so a redelivered
/// message is recognised and skipped.
public enum Inbox {
    /// Claims `messageID`; false when it was handled before (the transaction should then change nothing).
    public static func claim(_ messageID: String, type: String, on connection: PostgresConnection, logger: Logger)
        async throws -> Bool
    {
        let rows = try await connection.query(
            """
            INSERT INTO inbox (message_id, message_type) VALUES (\(messageID), \(type))
            ON CONFLICT (message_id) DO NOTHING RETURNING 1
            """,
            logger: logger)
        for try await _ in rows { return true }
        return false
    }
}

extension OutgoingMessage {
    /// A new message with a fresh id.
    public static func make<Body: Encodable>(
        exchange: String = "",
        routingKey: String,
        type: String,
        correlationID: String? = nil,
        replyTo: String? = nil,
        headers: [String: String] = [:],
        body: Body
    ) throws -> OutgoingMessage {
        OutgoingMessage(
            exchange: exchange,
            routingKey: routingKey,
            message: AMQPMessage(
                messageID: UUID().uuidString.lowercased(),
                correlationID: correlationID,
                type: type,
                replyTo: replyTo,
                headers: headers,
                body: try MessageCodec.encode(body)
            ))
    }
}
