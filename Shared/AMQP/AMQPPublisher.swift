import Logging

/// Publishes messages with publisher confirms on an `AMQPConnection`.
///
/// Callers await `publish(_:)`: the connection's thread sends the messages at once, whatever else waits for a
/// confirm, and the call returns when the broker has stored every message it was given (persistent messages on
/// durable queues). It throws when any was nacked, not confirmed in time, or the connection failed: the caller keeps
/// its copy (the outbox row) and tries again.
public final class AMQPPublisher: Sendable {
    private let connection: AMQPConnection

    /// A publisher with a connection of its own.
    public convenience init(
        configuration: AMQPConfiguration,
        topology: AMQPTopology,
        confirmTimeoutSeconds: Double = 10,
        logger: Logger
    ) {
        self.init(
            connection: AMQPConnection(
                configuration: configuration, topology: topology, confirmTimeoutSeconds: confirmTimeoutSeconds,
                logger: logger))
    }

    /// A publisher on a shared connection (which the publisher then starts and shuts down).
    public init(connection: AMQPConnection) {
        self.connection = connection
    }

    /// True while the connection is up.
    public var isConnected: Bool { connection.isConnected }

    /// Starts the connection. Publishing before `start()` starts it too.
    public func start() { connection.start() }

    /// Publishes `messages` and returns once the broker confirmed all of them.
    public func publish(_ messages: [OutgoingMessage]) async throws {
        try await connection.publish(messages)
    }

    /// Convenience for one message.
    public func publish(_ message: OutgoingMessage) async throws {
        try await publish([message])
    }

    /// Closes the connection; waiting callers get an error. Blocks until the connection's thread has stopped.
    public func shutdown() { connection.shutdown() }

    /// `shutdown()` for async callers.
    public func stop() async { await connection.stop() }
}
