/// Names of the queues and exchanges every service agrees on.
public enum Queues {
    /// Commands to the Order service (`completeOrder`, `cancelOrder`).
    public static let orderCommands = "order.commands"
    /// Events the Order service projects: saga status (for an order's history) and stock levels (the catalogue).
    public static let orderEvents = "order.events"
    /// Commands to the Inventory service.
    public static let inventoryCommands = "inventory.commands"
    /// Commands to the Payment service.
    public static let paymentCommands = "payment.commands"
    /// Requests to the orchestrator: start a saga.
    public static let orchestratorCommands = "orchestrator.commands"
    /// Replies of participants to the orchestrator's commands.
    public static let orchestratorReplies = "orchestrator.replies"
    /// Messages that could not be handled, after their delivery limit or a permanent failure.
    public static let deadLetters = "pets.dead-letters"
    /// Label of each Notifier replica's own exclusive queue on the status exchange.
    public static let notifierStatus = "notifier.status"
}

public enum Exchanges {
    /// Fan-out of every order's saga status events (progress and the final outcome).
    public static let status = "pets.status"
    /// Fan-out of stock level changes from Inventory.
    public static let stock = "pets.stock"
    /// Where queues send what they dead-letter.
    public static let deadLetter = "pets.dlx"
}

/// Message `type` property values.
public enum MessageTypes {
    public static let startPlaceOrder = "startPlaceOrder"
    public static let abandonPlaceOrder = "abandonPlaceOrder"
    public static let reply = "reply"
    public static let orderStatus = "orderStatus"
    public static let stockLevels = "stockLevels"
}
