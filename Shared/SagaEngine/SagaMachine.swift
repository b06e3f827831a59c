import Foundation
import Messaging

/// Where a saga stands, as stored and searched.
public enum SagaStatus: String, Codable, Sendable, CaseIterable {
    /// Forward steps are running.
    case running
    /// A step failed: compensations (then the closing call) are running.
    case compensating
    /// Every step succeeded.
    case completed
    /// Compensated and closed.
    case cancelled
    /// A compensation or the closing call kept failing; an operator must retry it.
    case needsAttention = "needs_attention"

    public var isTerminal: Bool { self == .completed || self == .cancelled }
}

/// Which call the saga is waiting on.
public enum SagaPhase: String, Codable, Sendable {
    case forward, compensating, closing, done
}

/// A timer the orchestrator must fire at `at`: a reply's deadline, or the pause before a retry.
public struct SagaTimer: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case deadline, retry }
    public var at: Date
    public var kind: Kind
}

/// One saga instance: everything needed to resume it after a crash. Stored as a whole, changed only by
/// `SagaMachine.handle`.
public struct SagaInstance<Data: Codable & Sendable>: Codable, Sendable {
    public var id: String
    public var orderId: String
    public var status: SagaStatus
    public var phase: SagaPhase
    /// The forward step, or the step being compensated.
    public var stepIndex: Int
    public var attempt: Int
    public var callStartedAt: Date?
    public var timer: SagaTimer?
    public var failure: SagaFailure?
    public var data: Data

    public init(id: String, orderId: String, data: Data) {
        self.id = id
        self.orderId = orderId
        self.status = .running
        self.phase = .forward
        self.stepIndex = 0
        self.attempt = 0
        self.data = data
    }
}

/// What happens to a saga.
public enum SagaEvent: Sendable, Equatable {
    case start
    case reply(StepReply)
    /// The instance's timer is due.
    case timerFired
    /// An operator asks a parked saga to try again.
    case operatorRetry
    /// The order's starter gave up before any step ran (its start never arrived): close the saga at once, with
    /// `failure` as the reason the order is cancelled.
    case abandon(SagaFailure)
}

/// A line of a saga's history.
public struct SagaHistoryEntry: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case sent, succeeded, failed, timedOut, retrying, compensated, ignored, parked, operatorRetry, completed,
            cancelled
    }
    public var step: String
    public var kind: Kind
    public var attempt: Int
    public var detail: String?
    public var durationMs: Int?
}

/// What the orchestrator must do after a transition, inside the same transaction.
public enum SagaEffect: Sendable, Equatable {
    /// Send a command to a participant.
    case send(queue: String, command: String, attempt: Int, body: [UInt8])
    /// Publish a status event for the order (the orchestrator numbers it).
    case status(StatusEvent.Status, step: String?, message: String?, errorType: String?)
    /// Record a history line.
    case history(SagaHistoryEntry)
}

/// The saga state machine: pure, no I/O. The caller loads an instance, calls `handle`, stores the instance and
/// carries out the effects in one transaction.
public struct SagaMachine<Data: Codable & Sendable>: Sendable {
    public let definition: SagaDefinition<Data>

    public init(_ definition: SagaDefinition<Data>) {
        self.definition = definition
    }

    public func handle(_ event: SagaEvent, _ saga: inout SagaInstance<Data>, now: Date) -> [SagaEffect] {
        var effects: [SagaEffect] = []
        switch event {
        case .start:
            guard saga.attempt == 0, saga.phase == .forward, saga.stepIndex == 0 else {
                effects.append(.history(.init(step: "start", kind: .ignored, attempt: 0, detail: "already started")))
                return effects
            }
            effects.append(.status(.started, step: nil, message: nil, errorType: nil))
            enter(&saga, now: now, effects: &effects)
        case .reply(let reply):
            handleReply(reply, &saga, now: now, effects: &effects)
        case .timerFired:
            handleTimer(&saga, now: now, effects: &effects)
        case .operatorRetry:
            guard saga.status == .needsAttention, let call = currentCall(saga) else {
                effects.append(
                    .history(.init(step: "operator", kind: .ignored, attempt: saga.attempt, detail: "not parked")))
                return effects
            }
            // A saga parked in its forward steps (its timer could not fire) runs on forward.
            saga.status = saga.phase == .forward ? .running : .compensating
            effects.append(.history(.init(step: call.command, kind: .operatorRetry, attempt: saga.attempt)))
            saga.attempt = 0
            send(call, &saga, now: now, effects: &effects)
        case .abandon(let failure):
            guard saga.attempt == 0, saga.phase == .forward, saga.stepIndex == 0, saga.status == .running else {
                effects.append(
                    .history(.init(step: failure.step, kind: .ignored, attempt: 0, detail: "the saga has started")))
                return effects
            }
            // Nothing ran, so nothing is compensated: straight to the closing call (the order's cancellation).
            saga.failure = failure
            saga.status = .compensating
            saga.phase = .closing
            effects.append(.history(.init(step: failure.step, kind: .failed, attempt: 0, detail: failure.message)))
            enter(&saga, now: now, effects: &effects)
        }
        return effects
    }

    /// The call the saga waits on in its current phase and step, if any.
    public func currentCall(_ saga: SagaInstance<Data>) -> RemoteCall<Data>? {
        switch saga.phase {
        case .forward:
            guard saga.stepIndex < definition.steps.count,
                case .remote(let call) = definition.steps[saga.stepIndex].action
            else { return nil }
            return call
        case .compensating:
            guard saga.stepIndex >= 0, saga.stepIndex < definition.steps.count else { return nil }
            return definition.steps[saga.stepIndex].compensation
        case .closing:
            return definition.onCompensated
        case .done:
            return nil
        }
    }

    /// The name shown for where the saga stands: the step, its compensation, or the closing call.
    public func currentStepName(_ saga: SagaInstance<Data>) -> String? {
        switch saga.phase {
        case .forward where saga.stepIndex < definition.steps.count:
            return definition.steps[saga.stepIndex].name
        case .compensating, .closing:
            return currentCall(saga)?.command
        default:
            return nil
        }
    }

    // MARK: Transitions

    /// Runs from the current position until the saga waits for a reply or ends.
    private func enter(_ saga: inout SagaInstance<Data>, now: Date, effects: inout [SagaEffect]) {
        while true {
            switch saga.phase {
            case .forward:
                guard saga.stepIndex < definition.steps.count else {
                    finish(&saga, as: .completed, effects: &effects)
                    return
                }
                let step = definition.steps[saga.stepIndex]
                switch step.action {
                case .remote(let call):
                    saga.attempt = 0
                    send(call, &saga, now: now, effects: &effects)
                    return
                case .local(let work):
                    do {
                        try work(&saga.data)
                        effects.append(.history(.init(step: step.name, kind: .succeeded, attempt: 1, durationMs: 0)))
                        effects.append(.status(.stepSucceeded, step: step.name, message: nil, errorType: nil))
                        saga.stepIndex += 1
                    } catch {
                        let failure =
                            (error as? SagaStepError) ?? SagaStepError(type: "StepFailed", message: "\(error)")
                        fail(
                            &saga, step: step.name, type: failure.type, message: failure.message,
                            compensateFailedStep: false, attempt: 1, effects: &effects)
                    }
                case nil:
                    saga.stepIndex += 1
                }
            case .compensating:
                guard saga.stepIndex >= 0 else {
                    saga.phase = .closing
                    continue
                }
                guard let call = definition.steps[saga.stepIndex].compensation else {
                    saga.stepIndex -= 1
                    continue
                }
                saga.attempt = 0
                send(call, &saga, now: now, effects: &effects)
                return
            case .closing:
                guard let call = definition.onCompensated else {
                    finish(&saga, as: .cancelled, effects: &effects)
                    return
                }
                saga.attempt = 0
                send(call, &saga, now: now, effects: &effects)
                return
            case .done:
                return
            }
        }
    }

    private func send(
        _ call: RemoteCall<Data>, _ saga: inout SagaInstance<Data>, now: Date, effects: inout [SagaEffect]
    ) {
        saga.attempt += 1
        saga.callStartedAt = now
        saga.timer = SagaTimer(at: now.addingTimeInterval(call.policy.deadline), kind: .deadline)
        let context = CallContext(sagaId: saga.id, orderId: saga.orderId, attempt: saga.attempt)
        let body: [UInt8]
        do {
            body = try call.makeBody(saga.data, saga.failure, context)
        } catch {
            // No command goes out: a forward step fails with the reason (and is not compensated, it never ran);
            // a compensation or the closing call parks the saga, as one that keeps failing would.
            let reason = (error as? SagaStepError)?.message ?? "Error, \(call.command) could not be built: \(error)"
            saga.timer = nil
            if saga.phase == .forward {
                fail(
                    &saga, step: call.command, type: (error as? SagaStepError)?.type ?? "CommandNotBuilt",
                    message: reason, compensateFailedStep: false, attempt: saga.attempt, effects: &effects)
                enter(&saga, now: now, effects: &effects)
            } else {
                saga.status = .needsAttention
                effects.append(
                    .history(.init(step: call.command, kind: .parked, attempt: saga.attempt, detail: reason)))
                effects.append(.status(.needsAttention, step: call.command, message: reason, errorType: nil))
            }
            return
        }
        effects.append(.send(queue: call.queue, command: call.command, attempt: saga.attempt, body: body))
        effects.append(.history(.init(step: call.command, kind: .sent, attempt: saga.attempt)))
    }

    private func handleReply(
        _ reply: StepReply, _ saga: inout SagaInstance<Data>, now: Date, effects: inout [SagaEffect]
    ) {
        // A reply counts when it answers the call the saga waits on. Any attempt's reply does: participants answer
        // every attempt of a call alike. Replies to calls the saga has moved past are only recorded.
        guard let call = currentCall(saga), call.command == reply.step,
            saga.timer != nil || (saga.status == .needsAttention && reply.success)
        else {
            effects.append(
                .history(
                    .init(step: reply.step, kind: .ignored, attempt: reply.attempt, detail: "late or duplicate reply")))
            return
        }
        let duration = saga.callStartedAt.map { Int((now.timeIntervalSince($0) * 1000).rounded()) }
        switch saga.phase {
        case .forward:
            let step = definition.steps[saga.stepIndex]
            if reply.success {
                effects.append(
                    .history(.init(step: step.name, kind: .succeeded, attempt: reply.attempt, durationMs: duration)))
                effects.append(.status(.stepSucceeded, step: step.name, message: nil, errorType: nil))
                saga.timer = nil
                saga.stepIndex += 1
                enter(&saga, now: now, effects: &effects)
            } else {
                // The participant refused and rolled its own work back: only earlier steps need undoing.
                fail(
                    &saga, step: step.name, type: reply.errorType ?? "StepFailed",
                    message: reply.errorMessage ?? "\(step.name) failed", compensateFailedStep: false,
                    attempt: reply.attempt, durationMs: duration, effects: &effects)
                enter(&saga, now: now, effects: &effects)
            }
        case .compensating, .closing:
            if reply.success {
                saga.timer = nil
                saga.status = .compensating
                if saga.phase == .compensating {
                    let step = definition.steps[saga.stepIndex]
                    effects.append(
                        .history(
                            .init(step: call.command, kind: .compensated, attempt: reply.attempt, durationMs: duration))
                    )
                    effects.append(.status(.compensated, step: step.name, message: nil, errorType: nil))
                    saga.stepIndex -= 1
                    enter(&saga, now: now, effects: &effects)
                } else {
                    effects.append(
                        .history(
                            .init(step: call.command, kind: .succeeded, attempt: reply.attempt, durationMs: duration)))
                    finish(&saga, as: .cancelled, effects: &effects)
                }
            } else {
                effects.append(
                    .history(
                        .init(
                            step: call.command, kind: .failed, attempt: reply.attempt, detail: reply.errorMessage,
                            durationMs: duration)))
                retryOrPark(call, &saga, now: now, effects: &effects)
            }
        case .done:
            break
        }
    }

    private func handleTimer(_ saga: inout SagaInstance<Data>, now: Date, effects: inout [SagaEffect]) {
        guard let timer = saga.timer, let call = currentCall(saga) else {
            saga.timer = nil
            return
        }
        switch timer.kind {
        case .retry:
            send(call, &saga, now: now, effects: &effects)
        case .deadline:
            effects.append(
                .history(
                    .init(
                        step: call.command, kind: .timedOut, attempt: saga.attempt,
                        detail: "no reply within \(call.policy.deadline) s",
                        durationMs: Int(call.policy.deadline * 1000))))
            if saga.phase == .forward {
                guard saga.attempt < call.policy.maxAttempts else {
                    // The outcome is unknown: the step may have happened, so it is compensated too.
                    let step = definition.steps[saga.stepIndex]
                    fail(
                        &saga, step: step.name, type: "Timeout",
                        message: "Error, \(step.name) did not answer in time", compensateFailedStep: true,
                        attempt: saga.attempt, effects: &effects)
                    enter(&saga, now: now, effects: &effects)
                    return
                }
                scheduleRetry(call, &saga, now: now, effects: &effects)
            } else {
                retryOrPark(call, &saga, now: now, effects: &effects)
            }
        }
    }

    private func scheduleRetry(
        _ call: RemoteCall<Data>, _ saga: inout SagaInstance<Data>, now: Date, effects: inout [SagaEffect]
    ) {
        let pause = call.policy.pause(beforeAttempt: saga.attempt + 1)
        effects.append(
            .history(.init(step: call.command, kind: .retrying, attempt: saga.attempt + 1, detail: "in \(pause) s")))
        effects.append(.status(.stepRetrying, step: currentStepName(saga), message: nil, errorType: nil))
        if pause <= 0 {
            send(call, &saga, now: now, effects: &effects)
        } else {
            saga.timer = SagaTimer(at: now.addingTimeInterval(pause), kind: .retry)
        }
    }

    /// Compensations and the closing call never give up silently: retried, then parked for an operator.
    private func retryOrPark(
        _ call: RemoteCall<Data>, _ saga: inout SagaInstance<Data>, now: Date, effects: inout [SagaEffect]
    ) {
        if saga.attempt < call.policy.maxAttempts {
            scheduleRetry(call, &saga, now: now, effects: &effects)
        } else {
            saga.status = .needsAttention
            saga.timer = nil
            effects.append(
                .history(
                    .init(
                        step: call.command, kind: .parked, attempt: saga.attempt,
                        detail: "gave up after \(saga.attempt) attempts")))
            effects.append(
                .status(
                    .needsAttention, step: call.command,
                    message: "\(call.command) keeps failing; an operator must retry it", errorType: nil))
        }
    }

    private func fail(
        _ saga: inout SagaInstance<Data>, step: String, type: String, message: String, compensateFailedStep: Bool,
        attempt: Int, durationMs: Int? = nil, effects: inout [SagaEffect]
    ) {
        saga.failure = SagaFailure(step: step, type: type, message: message)
        saga.status = .compensating
        saga.phase = .compensating
        saga.timer = nil
        if !compensateFailedStep { saga.stepIndex -= 1 }
        effects.append(
            .history(.init(step: step, kind: .failed, attempt: attempt, detail: message, durationMs: durationMs)))
        effects.append(.status(.stepFailed, step: step, message: message, errorType: type))
    }

    private func finish(_ saga: inout SagaInstance<Data>, as status: SagaStatus, effects: inout [SagaEffect]) {
        saga.status = status
        saga.phase = .done
        saga.timer = nil
        if status == .completed {
            effects.append(.history(.init(step: definition.name, kind: .completed, attempt: 0)))
            effects.append(.status(.success, step: nil, message: nil, errorType: nil))
        } else {
            effects.append(
                .history(.init(step: definition.name, kind: .cancelled, attempt: 0, detail: saga.failure?.message)))
            effects.append(.status(.failed, step: nil, message: saga.failure?.message, errorType: saga.failure?.type))
        }
    }
}
