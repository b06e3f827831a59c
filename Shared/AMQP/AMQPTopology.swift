/// Exchanges, queues and bindings a client declares when it connects. Declarations are idempotent, so every
/// connection declares what it uses and no start-up order between services matters.
public struct AMQPTopology: Sendable, Equatable {
    public enum ExchangeKind: String, Sendable {
        case direct, fanout, topic, headers
    }

    public struct Exchange: Sendable, Equatable {
        public var name: String
        public var kind: ExchangeKind
        public init(_ name: String, kind: ExchangeKind) {
            self.name = name
            self.kind = kind
        }
    }

    public struct Queue: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            /// Replicated, durable; the broker counts deliveries and dead-letters past `deliveryLimit`.
            case quorum(deliveryLimit: Int)
            /// Durable classic queue.
            case classic
            /// Server-named, exclusive to this connection, deleted with it: for per-replica fan-out.
            case exclusive
        }
        public var name: String
        public var kind: Kind
        public var deadLetterExchange: String?

        public init(_ name: String, kind: Kind, deadLetterExchange: String? = nil) {
            self.name = name
            self.kind = kind
            self.deadLetterExchange = deadLetterExchange
        }
    }

    public struct Binding: Sendable, Equatable {
        public var queue: String
        public var exchange: String
        public var routingKey: String
        public init(queue: String, exchange: String, routingKey: String = "") {
            self.queue = queue
            self.exchange = exchange
            self.routingKey = routingKey
        }
    }

    public var exchanges: [Exchange]
    public var queues: [Queue]
    public var bindings: [Binding]

    public init(exchanges: [Exchange] = [], queues: [Queue] = [], bindings: [Binding] = []) {
        self.exchanges = exchanges
        self.queues = queues
        self.bindings = bindings
    }

    public static func + (lhs: AMQPTopology, rhs: AMQPTopology) -> AMQPTopology {
        AMQPTopology(
            exchanges: lhs.exchanges + rhs.exchanges.filter { !lhs.exchanges.contains($0) },
            queues: lhs.queues + rhs.queues.filter { !lhs.queues.contains($0) },
            bindings: lhs.bindings + rhs.bindings.filter { !lhs.bindings.contains($0) }
        )
    }
}
