import Messaging
import SagaEngine

/// What the PlaceOrder saga carries from step to step.
struct PlaceOrderData: Codable, Sendable, Equatable {
    var orderId: String
    var lines: [OrderLine]
    var postCode: String
    var card: CardSummary
    var createdOn: String
    var itemsCents: Int
    var shippingCents: Int?
    var amountCents: Int?
    /// The W3C trace context of the request that placed the order: every command and event of the saga carries it,
    /// also those a timer sends.
    var traceparent: String?

    /// The shipping cost and the total, which `calculateShipping` sets; a step that needs them before that fails
    /// (it would otherwise charge nothing) rather than send a zero.
    func priced() throws -> (shippingCents: Int, amountCents: Int) {
        guard let shippingCents, let amountCents else {
            throw SagaStepError(type: "NotPriced", message: "Error, order \(orderId) has no shipping cost yet")
        }
        return (shippingCents, amountCents)
    }

    init(_ start: StartPlaceOrder, traceparent: String? = nil) {
        self.traceparent = traceparent
        orderId = start.orderId
        lines = start.lines
        postCode = start.postCode
        card = start.card
        createdOn = start.createdOn
        itemsCents = start.lines.reduce(0) { $0 + $1.unitPriceCents * $1.quantity }
    }
}

/// The PlaceOrder saga, as the seed's state machine has it: reserve, quote shipping, charge, complete; when a step
/// fails, undo the earlier ones in reverse order and cancel the order with the reason.
enum PlaceOrderSaga {
    /// - Parameters:
    ///   - step: deadline and attempts of each forward step (by default `RetryPolicy.step`: the seed's 10 s, 3
    ///     attempts); when they are spent the saga compensates.
    ///   - compensation: the same for compensations and `cancelOrder` (by default `RetryPolicy.compensation`); when
    ///     they are spent the saga is parked for an operator.
    static func definition(step: RetryPolicy = .step, compensation: RetryPolicy = .compensation)
        -> SagaDefinition<PlaceOrderData>
    {
        SagaDefinition<PlaceOrderData>(
            name: "PlaceOrder",
            steps: [
                .invoke(Commands.reserveInventory, policy: step) { ReserveInventory(lines: $0.lines) }
                    .compensate(with: Commands.releaseInventory, policy: compensation) { _ in ReleaseInventory() },
                SagaStep("calculateShipping")
                    .local { data in
                        let shipping = try Shipping.costCents(postCode: data.postCode)
                        data.shippingCents = shipping
                        data.amountCents = data.itemsCents + shipping
                    },
                .invoke(Commands.processPayment, policy: step) {
                    ProcessPayment(amountCents: try $0.priced().amountCents, card: $0.card)
                }
                .compensate(with: Commands.refundPayment, policy: compensation) { _ in RefundPayment() },
                .invoke(Commands.completeOrder, policy: step) {
                    let priced = try $0.priced()
                    return CompleteOrder(shippingCents: priced.shippingCents, amountCents: priced.amountCents)
                },
            ]
        )
        .whenCompensated(invoke: Commands.cancelOrder, policy: compensation) { _, failure in
            CancelOrder(errorType: failure.type, errorMessage: failure.message)
        }
    }
}

/// The seed's shipping rule: (last digit of the post code) / 2 + 2 dollars. Post code 2880 pays 2; 7 pays 5.50.
enum Shipping {
    static func costCents(postCode: String) throws -> Int {
        guard let last = postCode.last, last.isASCII, let digit = last.wholeNumberValue else {
            throw SagaStepError(type: "InvalidAddress", message: "Error, the post code must end with a digit")
        }
        return digit * 50 + 200
    }
}
