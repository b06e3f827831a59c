import Foundation
import Messaging

/// How long a call may take and how it is tried again.
public struct RetryPolicy: Sendable, Equatable, Codable {
    /// How long to wait for the reply of one attempt.
    public var deadline: Double
    /// Attempts in all, the first included.
    public var maxAttempts: Int
    /// Pause before the second attempt.
    public var interval: Double
    /// Each later pause is the previous one times this.
    public var backoff: Double

    public init(deadline: Double = 10, maxAttempts: Int = 3, interval: Double = 0.5, backoff: Double = 2) {
        self.deadline = deadline
        self.maxAttempts = maxAttempts
        self.interval = interval
        self.backoff = backoff
    }

    /// The pause before attempt `attempt` (2, 3, ...).
    public func pause(beforeAttempt attempt: Int) -> Double {
        interval * pow(backoff, Double(max(0, attempt - 2)))
    }

    /// Forward steps: the seed's 10 s deadline, three attempts.
    public static let step = RetryPolicy()
    /// Compensations must not give up quickly: more attempts, longer pauses, then the saga is parked.
    public static let compensation = RetryPolicy(deadline: 10, maxAttempts: 8, interval: 1, backoff: 2)
}

/// Identifies one attempt of a call: the participant echoes it in its reply.
public struct CallContext: Sendable, Equatable {
    public var sagaId: String
    public var orderId: String
    public var attempt: Int
}

/// A command sent to a participant's queue, built from the saga's data.
public struct RemoteCall<Data: Sendable>: Sendable {
    public var queue: String
    public var command: String
    public var policy: RetryPolicy
    /// Encodes the whole `SagaCommand` message body for one attempt.
    public var makeBody: @Sendable (Data, SagaFailure?, CallContext) throws -> [UInt8]

    public init<Payload: Codable & Sendable>(
        _ endpoint: CommandEndpoint<Payload>,
        policy: RetryPolicy,
        payload: @escaping @Sendable (Data, SagaFailure?) throws -> Payload
    ) {
        let command = endpoint.name
        self.queue = endpoint.queue
        self.command = command
        self.policy = policy
        self.makeBody = { data, failure, context in
            try MessageCodec.encode(
                SagaCommand(
                    sagaId: context.sagaId, orderId: context.orderId, step: command, attempt: context.attempt,
                    payload: try payload(data, failure)))
        }
    }
}

/// One step of a saga: a call to a participant or work done by the orchestrator itself, and how to undo it.
public struct SagaStep<Data: Sendable>: Sendable {
    public enum Action: Sendable {
        case remote(RemoteCall<Data>)
        /// Runs inside the orchestrator's transaction; throwing `SagaStepError` fails the step.
        case local(@Sendable (inout Data) throws -> Void)
    }

    public var name: String
    public var action: Action?
    public var compensation: RemoteCall<Data>?

    public init(_ name: String) {
        self.name = name
    }

    /// A step that sends `endpoint`'s command to its participant and waits for the reply; named after the command.
    public static func invoke<Payload: Codable & Sendable>(
        _ endpoint: CommandEndpoint<Payload>,
        policy: RetryPolicy = .step,
        payload: @escaping @Sendable (Data) throws -> Payload
    ) -> SagaStep {
        var step = SagaStep(endpoint.name)
        step.action = .remote(RemoteCall(endpoint, policy: policy) { data, _ in try payload(data) })
        return step
    }

    /// Computes in the orchestrator, no participant involved.
    public func local(_ work: @escaping @Sendable (inout Data) throws -> Void) -> SagaStep {
        var step = self
        step.action = .local(work)
        return step
    }

    /// Undoes the step when a later one fails. The participant must accept it for a step that never ran.
    public func compensate<Payload: Codable & Sendable>(
        with endpoint: CommandEndpoint<Payload>,
        policy: RetryPolicy = .compensation,
        payload: @escaping @Sendable (Data) throws -> Payload
    ) -> SagaStep {
        var step = self
        step.compensation = RemoteCall(endpoint, policy: policy) { data, _ in try payload(data) }
        return step
    }
}

/// Thrown by a local step to fail it with a reason the client sees.
public struct SagaStepError: Error, Sendable, Equatable {
    public var type: String
    public var message: String
    public init(type: String, message: String) {
        self.type = type
        self.message = message
    }
}

/// Why a saga is being compensated.
public struct SagaFailure: Codable, Sendable, Equatable {
    public var step: String
    public var type: String
    public var message: String

    public init(step: String, type: String, message: String) {
        self.step = step
        self.type = type
        self.message = message
    }
}

/// A saga: its steps in order and the call that closes a failed saga once every compensation ran.
public struct SagaDefinition<Data: Codable & Sendable>: Sendable {
    public var name: String
    public var steps: [SagaStep<Data>]
    public var onCompensated: RemoteCall<Data>?

    public init(name: String, steps: [SagaStep<Data>]) {
        self.name = name
        self.steps = steps
    }

    /// After the compensations, tells a participant the saga failed and why (the failure is passed along).
    public func whenCompensated<Payload: Codable & Sendable>(
        invoke endpoint: CommandEndpoint<Payload>,
        policy: RetryPolicy = .compensation,
        payload: @escaping @Sendable (Data, SagaFailure) throws -> Payload
    ) -> SagaDefinition {
        var definition = self
        definition.onCompensated = RemoteCall(endpoint, policy: policy) { data, failure in
            try payload(data, failure ?? SagaFailure(step: "", type: "Unknown", message: "unknown failure"))
        }
        return definition
    }
}
