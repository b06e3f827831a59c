import Foundation
import Messaging
import SagaEngine
import Testing

/// The engine on a saga of its own, so that its rules are tested apart from the shop's saga: two remote steps
/// (`book`, `pay`), a compensation for the first, and a closing call when compensated.
struct ToySagaTests {
    struct Trip: Codable, Sendable, Equatable {
        var nights: Int
        var price: Int?
    }

    struct Book: Codable, Sendable { var nights: Int }
    struct Pay: Codable, Sendable { var amount: Int }
    struct Cancel: Codable, Sendable { var reason: String }
    struct Unbook: Codable, Sendable {}

    static let book = CommandEndpoint<Book>(queue: "hotel", name: "book")
    static let unbook = CommandEndpoint<Unbook>(queue: "hotel", name: "unbook")
    static let pay = CommandEndpoint<Pay>(queue: "bank", name: "pay")
    static let cancel = CommandEndpoint<Cancel>(queue: "desk", name: "cancel")

    let machine = SagaMachine(
        SagaDefinition<Trip>(
            name: "Trip",
            steps: [
                .invoke(book) { Book(nights: $0.nights) }
                    .compensate(with: unbook) { _ in Unbook() },
                .invoke(pay) { trip in
                    guard let price = trip.price else {
                        throw SagaStepError(type: "NoPrice", message: "Error, the trip has no price")
                    }
                    return Pay(amount: price)
                },
            ]
        )
        .whenCompensated(invoke: cancel) { _, failure in Cancel(reason: failure.message) })
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func commands(_ effects: [SagaEffect]) -> [String] {
        effects.compactMap {
            if case .send(_, let command, _, _) = $0 { return command }
            return nil
        }
    }

    func reply(_ step: String, success: Bool = true) -> SagaEvent {
        .reply(
            StepReply(
                sagaId: "trip-1", step: step, attempt: 1, success: success, errorType: success ? nil : "No",
                errorMessage: success ? nil : "Error, \(step) refused"))
    }

    @Test func everyStepSucceeds() {
        var trip = SagaInstance(id: "trip-1", orderId: "order-1", data: Trip(nights: 2, price: 300))
        var effects = machine.handle(.start, &trip, now: now)
        effects += machine.handle(reply("book"), &trip, now: now)
        effects += machine.handle(reply("pay"), &trip, now: now)
        #expect(commands(effects) == ["book", "pay"])
        #expect(trip.status == .completed)
    }

    @Test func aFailedStepUndoesTheOnesBeforeItThenCloses() {
        var trip = SagaInstance(id: "trip-1", orderId: "order-1", data: Trip(nights: 2, price: 300))
        var effects = machine.handle(.start, &trip, now: now)
        effects += machine.handle(reply("book"), &trip, now: now)
        effects += machine.handle(reply("pay", success: false), &trip, now: now)
        effects += machine.handle(reply("unbook"), &trip, now: now)
        effects += machine.handle(reply("cancel"), &trip, now: now)
        #expect(commands(effects) == ["book", "pay", "unbook", "cancel"])
        #expect(trip.status == .cancelled)
        #expect(trip.failure?.message == "Error, pay refused")
    }

    @Test func aCommandThatCannotBeBuiltFailsItsStepWithTheReasonInsteadOfSendingAnEmptyBody() throws {
        var trip = SagaInstance(id: "trip-1", orderId: "order-1", data: Trip(nights: 2, price: nil))
        var effects = machine.handle(.start, &trip, now: now)
        effects += machine.handle(reply("book"), &trip, now: now)
        // `pay` never goes out; the booking is undone and the trip closed with the step's own reason.
        #expect(commands(effects) == ["book", "unbook"])
        #expect(trip.failure == SagaFailure(step: "pay", type: "NoPrice", message: "Error, the trip has no price"))
        effects += machine.handle(reply("unbook"), &trip, now: now)
        let cancel = effects.compactMap { effect -> SagaCommand<Cancel>? in
            guard case .send(_, "cancel", _, let body) = effect else { return nil }
            return try? MessageCodec.decode(SagaCommand<Cancel>.self, from: body)
        }
        #expect(cancel.map(\.payload.reason) == ["Error, the trip has no price"])
    }
}
