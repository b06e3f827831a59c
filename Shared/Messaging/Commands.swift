import Foundation

/// A product line of an order, with the unit price fixed when the order was placed.
public struct OrderLine: Codable, Sendable, Equatable {
    public var productId: String
    public var title: String
    public var quantity: Int
    public var unitPriceCents: Int

    public init(productId: String, title: String, quantity: Int, unitPriceCents: Int) {
        self.productId = productId
        self.title = title
        self.quantity = quantity
        self.unitPriceCents = unitPriceCents
    }
}

/// What a participant needs of a card: never the full number.
public struct CardSummary: Codable, Sendable, Equatable {
    public var last4: String
    public var expiry: String
    public var cardholderName: String

    public init(last4: String, expiry: String, cardholderName: String) {
        self.last4 = last4
        self.expiry = expiry
        self.cardholderName = cardholderName
    }
}

/// Order -> Orchestrator: run the PlaceOrder saga for a new order.
public struct StartPlaceOrder: Codable, Sendable, Equatable {
    public var orderId: String
    public var lines: [OrderLine]
    public var postCode: String
    public var card: CardSummary
    public var createdOn: String

    public init(orderId: String, lines: [OrderLine], postCode: String, card: CardSummary, createdOn: String) {
        self.orderId = orderId
        self.lines = lines
        self.postCode = postCode
        self.card = card
        self.createdOn = createdOn
    }
}

/// Order -> Orchestrator: the order's saga never began (its `startPlaceOrder` was dead-lettered, even when sent
/// again): close it without running a step, and cancel the order with this reason. Ignored when the saga exists.
/// Deliberately small, so it decodes where a start did not.
public struct AbandonPlaceOrder: Codable, Sendable, Equatable {
    public var orderId: String
    public var errorType: String
    public var errorMessage: String
    /// When the order was placed (ISO 8601), for the final status event's `createdOn`.
    public var createdOn: String

    public init(orderId: String, errorType: String, errorMessage: String, createdOn: String) {
        self.orderId = orderId
        self.errorType = errorType
        self.errorMessage = errorMessage
        self.createdOn = createdOn
    }
}

/// Every command the orchestrator sends to a participant: which saga, which step, which attempt, and the step's
/// own payload. The participant echoes `sagaId`, `step` and `attempt` in its reply.
public struct SagaCommand<Payload: Codable & Sendable>: Codable, Sendable {
    public var sagaId: String
    public var orderId: String
    public var step: String
    public var attempt: Int
    public var payload: Payload

    public init(sagaId: String, orderId: String, step: String, attempt: Int, payload: Payload) {
        self.sagaId = sagaId
        self.orderId = orderId
        self.step = step
        self.attempt = attempt
        self.payload = payload
    }
}

/// A saga command as one value, as Eventuate's endpoints are: the queue its participant consumes, its name (the AMQP
/// `type`) and its payload type. The saga that sends it, the router that dispatches it and the handler that applies
/// it all name the same value, so they cannot disagree; the participant's answer is always a `StepReply` on
/// `replyQueue`.
public struct CommandEndpoint<Payload: Codable & Sendable>: Sendable {
    public let queue: String
    public let name: String

    public init(queue: String, name: String) {
        self.queue = queue
        self.name = name
    }

    /// Where the participant sends its `StepReply` (unless the command's `replyTo` says otherwise).
    public var replyQueue: String { Queues.orchestratorReplies }
}

/// The commands the participants handle.
public enum Commands {
    public static let reserveInventory = CommandEndpoint<ReserveInventory>(
        queue: Queues.inventoryCommands, name: "reserveInventory")
    public static let releaseInventory = CommandEndpoint<ReleaseInventory>(
        queue: Queues.inventoryCommands, name: "releaseInventory")
    public static let processPayment = CommandEndpoint<ProcessPayment>(
        queue: Queues.paymentCommands, name: "processPayment")
    public static let refundPayment = CommandEndpoint<RefundPayment>(
        queue: Queues.paymentCommands, name: "refundPayment")
    public static let completeOrder = CommandEndpoint<CompleteOrder>(queue: Queues.orderCommands, name: "completeOrder")
    public static let cancelOrder = CommandEndpoint<CancelOrder>(queue: Queues.orderCommands, name: "cancelOrder")
}

public struct ReserveInventory: Codable, Sendable, Equatable {
    public var lines: [OrderLine]
    public init(lines: [OrderLine]) { self.lines = lines }
}

/// Release whatever the saga reserved; also fine (and remembered) when nothing was reserved.
public struct ReleaseInventory: Codable, Sendable, Equatable {
    public init() {}
}

public struct ProcessPayment: Codable, Sendable, Equatable {
    public var amountCents: Int
    public var card: CardSummary
    public init(amountCents: Int, card: CardSummary) {
        self.amountCents = amountCents
        self.card = card
    }
}

/// Refund whatever the saga charged; also fine (and remembered) when nothing was charged.
public struct RefundPayment: Codable, Sendable, Equatable {
    public init() {}
}

public struct CompleteOrder: Codable, Sendable, Equatable {
    public var shippingCents: Int
    public var amountCents: Int
    public init(shippingCents: Int, amountCents: Int) {
        self.shippingCents = shippingCents
        self.amountCents = amountCents
    }
}

public struct CancelOrder: Codable, Sendable, Equatable {
    public var errorType: String
    public var errorMessage: String
    public init(errorType: String, errorMessage: String) {
        self.errorType = errorType
        self.errorMessage = errorMessage
    }
}

/// A participant's answer to a `SagaCommand`.
public struct StepReply: Codable, Sendable, Equatable {
    public var sagaId: String
    public var step: String
    public var attempt: Int
    public var success: Bool
    public var errorType: String?
    public var errorMessage: String?

    public init(
        sagaId: String, step: String, attempt: Int, success: Bool, errorType: String? = nil, errorMessage: String? = nil
    ) {
        self.sagaId = sagaId
        self.step = step
        self.attempt = attempt
        self.success = success
        self.errorType = errorType
        self.errorMessage = errorMessage
    }
}

/// The seed's failure messages.
public enum FailureMessages {
    public static let insufficientInventory = "Error, insufficient inventory"
    public static let invalidCreditCard = "Error, invalid credit card"
}

/// Inventory -> everyone: the stock on hand of products after a change. `version` grows with every change of a
/// product, so a projection keeps the newest and ignores what arrives late.
public struct StockLevels: Codable, Sendable, Equatable {
    public struct Level: Codable, Sendable, Equatable {
        public var productId: String
        public var stock: Int
        public var version: Int64
        public init(productId: String, stock: Int, version: Int64) {
            self.productId = productId
            self.stock = stock
            self.version = version
        }
    }
    public var levels: [Level]
    public init(levels: [Level]) { self.levels = levels }
}
