/// A message as it travels: body and the properties every service relies on.
public struct AMQPMessage: Sendable, Equatable {
    /// Unique per message; consumers' inboxes dedupe on it.
    public var messageID: String
    /// The saga (or order) the message belongs to.
    public var correlationID: String?
    /// The message type: the command, reply or event name.
    public var type: String
    /// Where the receiver should send its reply.
    public var replyTo: String?
    /// Extra string headers: trace context (`traceparent`) and the like.
    public var headers: [String: String]
    public var contentType: String
    public var body: [UInt8]
    /// Persistent messages survive a broker restart on durable queues.
    public var persistent: Bool

    public init(
        messageID: String,
        correlationID: String? = nil,
        type: String,
        replyTo: String? = nil,
        headers: [String: String] = [:],
        contentType: String = "application/json",
        body: [UInt8],
        persistent: Bool = true
    ) {
        self.messageID = messageID
        self.correlationID = correlationID
        self.type = type
        self.replyTo = replyTo
        self.headers = headers
        self.contentType = contentType
        self.body = body
        self.persistent = persistent
    }
}

/// A message addressed to an exchange with a routing key (the default exchange `""` routes to the queue named).
public struct OutgoingMessage: Sendable, Equatable {
    public var exchange: String
    public var routingKey: String
    public var message: AMQPMessage

    public init(exchange: String = "", routingKey: String, message: AMQPMessage) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.message = message
    }
}

/// What to do with a delivery once it has been handled.
public enum DeliverySettlement: Sendable, Equatable {
    /// Handled and committed: the broker forgets it.
    case ack
    /// Put back on the queue for another try (counts towards the queue's delivery limit).
    case requeue
    /// Cannot be handled: dead-lettered by the broker.
    case reject
}

/// A message received by a consumer. Settle it exactly once, with `settle(_:)` or, for many, `settle(_:_:)`.
public struct AMQPDelivery: Sendable {
    public let message: AMQPMessage
    public let queue: String
    public let exchange: String
    public let routingKey: String
    /// The broker says this message was delivered before (to this or another consumer) and not acked.
    public let redelivered: Bool
    /// How many times a quorum queue delivered it before (`x-delivery-count`), 0 on the first delivery.
    public let deliveryCount: Int
    let deliveryTag: UInt64
    let generation: UInt64
    let consumer: AMQPConsumer

    /// Acks, requeues or rejects on the connection's own thread. A settlement for a connection that has since been
    /// lost is dropped: the broker redelivers the message.
    public func settle(_ settlement: DeliverySettlement) {
        consumer.settle(generation: generation, tags: [deliveryTag], settlement)
    }

    /// Settles many deliveries at once: one hand-over to the connection's thread, and consecutive acks become one
    /// `multiple` ack on the wire.
    public static func settle(_ deliveries: [AMQPDelivery], _ settlement: DeliverySettlement) {
        var groups: [ObjectIdentifier: (consumer: AMQPConsumer, generation: UInt64, tags: [UInt64])] = [:]
        for delivery in deliveries {
            let key = ObjectIdentifier(delivery.consumer)
            if let group = groups[key], group.generation != delivery.generation {
                // Deliveries of two connections: settle one by one, the old ones are dropped anyway.
                delivery.settle(settlement)
                continue
            }
            groups[key, default: (delivery.consumer, delivery.generation, [])].tags.append(delivery.deliveryTag)
        }
        for group in groups.values {
            group.consumer.settle(generation: group.generation, tags: group.tags, settlement)
        }
    }
}
