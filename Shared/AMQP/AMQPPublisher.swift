import Foundation
import Logging

/// Publishes messages with publisher confirms on a connection and a thread of its own.
///
/// Callers await `publish(_:)`; the thread takes every batch waiting at that moment, sends them all, and waits for the
/// broker's confirms once, so concurrent callers share one confirm round trip. A call returns only when the broker
/// has stored every message it was given (persistent messages on durable queues), and throws when any was nacked,
/// not confirmed in time, or the connection failed: the caller keeps its copy (the outbox row) and tries again.
public final class AMQPPublisher: @unchecked Sendable {
    // @unchecked Sendable: the mutable fields are guarded by `condition`; the connection itself is only touched by
    // the publisher's thread.
    private struct Job {
        var messages: [OutgoingMessage]
        var continuation: CheckedContinuation<Void, Error>
    }

    private let configuration: AMQPConfiguration
    private let topology: AMQPTopology
    private let confirmTimeoutSeconds: Int
    private let logger: Logger
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var started = false
    private var stopped = false
    private var connected = false

    public init(
        configuration: AMQPConfiguration,
        topology: AMQPTopology,
        confirmTimeoutSeconds: Int = 10,
        logger: Logger
    ) {
        self.configuration = configuration
        self.topology = topology
        self.confirmTimeoutSeconds = confirmTimeoutSeconds
        self.logger = logger
    }

    /// True while the publisher holds a working connection (it connects on the first publish).
    public var isConnected: Bool {
        condition.lock()
        defer { condition.unlock() }
        return connected
    }

    /// Starts the publisher's thread. Publishing before `start()` starts it too.
    public func start() {
        condition.lock()
        defer { condition.unlock() }
        startLocked()
    }

    private func startLocked() {
        guard !started else { return }
        started = true
        let thread = Thread { [self] in run() }
        thread.name = "amqp-publisher"
        thread.start()
    }

    /// Publishes `messages` and returns once the broker confirmed all of them.
    public func publish(_ messages: [OutgoingMessage]) async throws {
        guard !messages.isEmpty else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            condition.lock()
            defer { condition.unlock() }
            guard !stopped else {
                continuation.resume(throwing: AMQPError(.shutdown, "the publisher is shut down"))
                return
            }
            startLocked()
            jobs.append(Job(messages: messages, continuation: continuation))
            condition.signal()
        }
    }

    /// Convenience for one message.
    public func publish(_ message: OutgoingMessage) async throws {
        try await publish([message])
    }

    /// Stops the thread after the batch in progress; waiting callers get `AMQPError.shutdown`.
    public func shutdown() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        var connection: BlockingConnection?
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if stopped {
                let abandoned = jobs
                jobs = []
                connected = false
                condition.unlock()
                abandoned.forEach { $0.continuation.resume(throwing: AMQPError(.shutdown, "the publisher shut down")) }
                connection?.close(polite: true)
                return
            }
            let batch = jobs
            jobs = []
            condition.unlock()

            // A connection idle since the broker restarted looks fine until used: one fresh retry covers that.
            var attemptsLeft = connection == nil ? 1 : 2
            while attemptsLeft > 0 {
                attemptsLeft -= 1
                do {
                    if connection == nil {
                        let fresh = try BlockingConnection(configuration: configuration, confirms: true)
                        try fresh.declare(topology)
                        connection = fresh
                        setConnected(true)
                        logger.debug("publisher connected", metadata: ["host": "\(configuration.host)"])
                    }
                    try send(batch, on: connection!)
                    break
                } catch {
                    connection?.close(polite: false)
                    connection = nil
                    setConnected(false)
                    if attemptsLeft == 0 {
                        logger.warning("publish failed", metadata: ["error": "\(error)", "batches": "\(batch.count)"])
                        batch.forEach { $0.continuation.resume(throwing: error) }
                    }
                }
            }
        }
    }

    private func send(_ batch: [Job], on connection: BlockingConnection) throws {
        let first = connection.nextPublishTag
        var ranges: [ClosedRange<UInt64>] = []
        for job in batch {
            let start = connection.nextPublishTag
            for message in job.messages { try connection.publish(message) }
            ranges.append(start...(connection.nextPublishTag - 1))
        }
        let nacked = try connection.waitForConfirms(
            first...(connection.nextPublishTag - 1), timeoutSeconds: confirmTimeoutSeconds)
        for (job, range) in zip(batch, ranges) {
            if nacked.contains(where: { range.contains($0) }) {
                job.continuation.resume(
                    throwing: AMQPError(.publishNacked, "the broker refused a message of this batch"))
            } else {
                job.continuation.resume()
            }
        }
    }

    private func setConnected(_ value: Bool) {
        condition.lock()
        connected = value
        condition.unlock()
    }
}
