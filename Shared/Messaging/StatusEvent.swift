/// An order's saga status event, as the Notifier pushes it to WebSocket clients and the Order service records it.
///
/// `seq` numbers an order's events 1, 2, ...; the same event always carries the same seq. Progress events name the
/// step; the final event keeps the seed's shape: `success` with `amountPaid`, or `failed` with `message`.
public struct StatusEvent: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable {
        /// The saga started.
        case started
        /// A forward step succeeded (`step` names it).
        case stepSucceeded
        /// A forward step failed or ran out of time; compensation follows.
        case stepFailed
        /// A step did not answer in time and is tried again.
        case stepRetrying
        /// A compensation undid a step (`step` names the step undone).
        case compensated
        /// A compensation keeps failing: the saga waits for an operator.
        case needsAttention
        /// Final: the order is completed and paid.
        case success
        /// Final: the order is cancelled; `message` says why.
        case failed
    }

    public var orderId: String
    public var seq: Int
    public var status: Status
    public var step: String?
    public var message: String?
    public var errorType: String?
    public var amountPaid: Double?
    public var createdOn: String?
    /// When the event happened (ISO 8601).
    public var at: String
    /// The W3C trace context of the request that placed the order, so a push can be tied to its trace.
    public var traceparent: String?

    public init(
        orderId: String, seq: Int, status: Status, step: String? = nil, message: String? = nil,
        errorType: String? = nil, amountPaid: Double? = nil, createdOn: String? = nil, at: String,
        traceparent: String? = nil
    ) {
        self.orderId = orderId
        self.seq = seq
        self.status = status
        self.step = step
        self.message = message
        self.errorType = errorType
        self.amountPaid = amountPaid
        self.createdOn = createdOn
        self.at = at
        self.traceparent = traceparent
    }

    public var isFinal: Bool { status == .success || status == .failed }
}

extension StatusEvent {
    /// The events in a status message's body: one event (an object), or the events of one saga transition in `seq`
    /// order (an array).
    public static func decodeMessage(_ body: [UInt8]) throws -> [StatusEvent] {
        let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        if body.first(where: { !whitespace.contains($0) }) == UInt8(ascii: "[") {
            return try MessageCodec.decode([StatusEvent].self, from: body)
        }
        return [try MessageCodec.decode(StatusEvent.self, from: body)]
    }
}
