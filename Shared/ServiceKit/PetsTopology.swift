import AMQP
import Messaging

/// Every durable exchange, queue and binding of the system. Each connection declares all of it, so a message
/// published before its consumer ever started still finds its queue, and no start-up order matters.
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

    /// A Notifier replica's own queue on the status fan-out: every replica sees every event.
    public static let notifier =
        durable
        + AMQPTopology(
            queues: [.init(Queues.notifierStatus, kind: .exclusive, deadLetterExchange: Exchanges.deadLetter)],
            bindings: [.init(queue: Queues.notifierStatus, exchange: Exchanges.status)]
        )
}
