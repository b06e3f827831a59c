import AMQP
import Messaging

/// Every durable exchange, queue and binding of the system. The broker's setup declares all of it once, as an
/// administrator, before any service connects (`docker/rabbitmq-definitions.sh`, imported by scripts/lib.sh and by
/// the compose broker), so a message published before its consumer ever started still finds its queue, and no
/// start-up order between services matters. The services' own broker users may not configure anything durable:
/// they declare nothing but the Notifier's exclusive queue (`notifierQueue`).
public enum PetsTopology {
    /// Quorum queues count deliveries: a message that keeps crashing its consumer is dead-lettered at this count.
    public static let deliveryLimit = 20

    public static let durable: AMQPTopology = {
        let queue = { (name: String) in
            AMQPTopology.Queue(
                name, kind: .quorum(deliveryLimit: deliveryLimit), deadLetterExchange: Exchanges.deadLetter)
        }
        return AMQPTopology(
            exchanges: [
                .init(Exchanges.status, kind: .fanout),
                .init(Exchanges.stock, kind: .fanout),
                .init(Exchanges.deadLetter, kind: .fanout),
            ],
            queues: [
                queue(Queues.orderCommands),
                queue(Queues.orderEvents),
                queue(Queues.inventoryCommands),
                queue(Queues.paymentCommands),
                queue(Queues.orchestratorCommands),
                queue(Queues.orchestratorReplies),
                AMQPTopology.Queue(Queues.deadLetters, kind: .quorum(deliveryLimit: 1_000)),
            ],
            bindings: [
                .init(queue: Queues.orderEvents, exchange: Exchanges.status),
                .init(queue: Queues.orderEvents, exchange: Exchanges.stock),
                .init(queue: Queues.deadLetters, exchange: Exchanges.deadLetter),
            ]
        )
    }()

    /// What a service declares itself: nothing, the broker's setup declared the durable topology.
    public static let declaredByServices = AMQPTopology()

    /// A Notifier replica's own queue on the status fan-out (server-named, so its user's permissions cover
    /// `amq.gen-*` only): every replica sees every event.
    public static let notifierQueue = AMQPTopology(
        queues: [.init(Queues.notifierStatus, kind: .exclusive, deadLetterExchange: Exchanges.deadLetter)],
        bindings: [.init(queue: Queues.notifierStatus, exchange: Exchanges.status)]
    )
}
