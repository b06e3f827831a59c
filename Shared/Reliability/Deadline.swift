import Foundation

/// Thrown when an operation passed its deadline; callers treat it as transient and try again.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let seconds: Double
    public var description: String { "no result within \(seconds) s" }
}

/// Runs `operation` and returns its result, or throws `DeadlineExceeded` after `seconds`, cancelling it.
///
/// Unlike a task group, this does not wait for a cancelled operation to wind down: a call stuck somewhere that
/// ignores cancellation cannot hold its caller forever. That is safe for work guarded by the inbox: should the
/// abandoned attempt still commit later, the retry finds its message id and does nothing.
public func withDeadline<Result: Sendable>(
    seconds: Double, _ operation: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    let once = ResumeOnce<Result>()
    return try await withCheckedThrowingContinuation { continuation in
        once.set(continuation)
        let work = Task {
            do {
                once.resume(.success(try await operation()))
            } catch {
                once.resume(.failure(error))
            }
        }
        let timer = Task {
            try? await Task.sleep(for: .seconds(seconds))
            if !Task.isCancelled, once.resume(.failure(DeadlineExceeded(seconds: seconds))) { work.cancel() }
        }
        once.onResume { timer.cancel() }
    }
}

/// Resumes a continuation exactly once, whoever comes first.
private final class ResumeOnce<Result: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: every field is only touched under `lock`.
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Result, any Error>?
    private var resumed = false
    private var cleanup: (@Sendable () -> Void)?

    func set(_ continuation: CheckedContinuation<Result, any Error>) {
        lock.withLock { self.continuation = continuation }
    }

    func onResume(_ action: @escaping @Sendable () -> Void) {
        let runNow = lock.withLock {
            if resumed { return true }
            cleanup = action
            return false
        }
        if runNow { action() }
    }

    @discardableResult
    func resume(_ result: Swift.Result<Result, any Error>) -> Bool {
        let (continuation, cleanup): (CheckedContinuation<Result, any Error>?, (@Sendable () -> Void)?) = lock.withLock
        {
            guard !resumed else { return (nil, nil) }
            resumed = true
            defer {
                self.continuation = nil
                self.cleanup = nil
            }
            return (self.continuation, self.cleanup)
        }
        guard let continuation else { return false }
        continuation.resume(with: result)
        cleanup?()
        return true
    }
}
