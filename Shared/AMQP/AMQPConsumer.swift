import Foundation
import Logging

/// Consumes one queue on an `AMQPConnection`, with manual acks and a bounded prefetch.
///
/// Deliveries arrive as `batches` (everything the connection read for this queue in one turn, in the broker's
/// order) or one at a time as `deliveries`; one reader, either. Each delivery is settled with
/// `AMQPDelivery.settle(_:)`, which hands the ack to the connection's thread (a connection is never used from two
/// threads). When the broker goes away the connection reconnects and this consumer consumes again; unacked
/// deliveries of the lost connection are redelivered by the broker, so settlements for them are dropped.
public final class AMQPConsumer: @unchecked Sendable {
    // @unchecked Sendable: the mutable fields are guarded by `lock`; the connection does its own locking.
    public let queue: String
    let prefetch: UInt16
    private let connection: AMQPConnection
    private let ownsConnection: Bool
    private let stream: AsyncStream<[AMQPDelivery]>
    private let continuation: AsyncStream<[AMQPDelivery]>.Continuation
    private let lock = NSLock()
    private var connectedGeneration: UInt64?

    /// A consumer with a connection of its own (tests, tools). Services share one connection:
    /// `AMQPConnection.consumer(queue:prefetch:)`.
    /// - Parameters:
    ///   - queue: the queue to consume; for an exclusive queue, the label it has in `topology`.
    ///   - onConnect: called on the connection's thread after every (re)connect, once this consumer consumes.
    public convenience init(
        configuration: AMQPConfiguration,
        topology: AMQPTopology,
        queue: String,
        prefetch: UInt16 = 64,
        logger: Logger,
        onConnect: (@Sendable () -> Void)? = nil
    ) {
        let connection = AMQPConnection(
            configuration: configuration, topology: topology, confirms: false, logger: logger, onConnect: onConnect)
        self.init(connection: connection, queue: queue, prefetch: prefetch, ownsConnection: true)
    }

    init(connection: AMQPConnection, queue: String, prefetch: UInt16, ownsConnection: Bool) {
        self.connection = connection
        self.queue = queue
        self.prefetch = prefetch
        self.ownsConnection = ownsConnection
        (stream, continuation) = AsyncStream.makeStream(of: [AMQPDelivery].self)
    }

    /// Batches of deliveries, in the order the broker sent them. Start the consumer to receive any.
    public var batches: AsyncStream<[AMQPDelivery]> { stream }

    /// The same deliveries one at a time. Start the consumer to receive any.
    public var deliveries: AMQPDeliveries { AMQPDeliveries(batches: stream) }

    /// True while the consumer consumes on a working connection.
    public var isConnected: Bool { lock.withLock { connectedGeneration != nil } && connection.isConnected }

    /// Starts consuming (and the connection, if it is not running yet).
    public func start() {
        connection.register(self)
    }

    /// Stops consuming: settlements already handed over are sent, the stream ends, and for a consumer with its
    /// own connection the connection closes. Returns when that is done; blocks the caller.
    public func shutdown() {
        if ownsConnection {
            connection.shutdown()
        } else {
            connection.unregister(self)
            finish()
        }
    }

    /// `shutdown()` for async callers.
    public func stop() async {
        if ownsConnection {
            await connection.stop()
        } else {
            connection.unregister(self)
            finish()
        }
    }

    // MARK: Called by the connection's thread

    func settle(generation: UInt64, tags: [UInt64], _ settlement: DeliverySettlement) {
        connection.settle(self, generation: generation, tags: tags, settlement)
    }

    func connected(generation: UInt64) {
        lock.withLock { connectedGeneration = generation }
    }

    func disconnected() {
        lock.withLock { connectedGeneration = nil }
    }

    func yield(_ batch: [AMQPDelivery]) {
        continuation.yield(batch)
    }

    func finish() {
        disconnected()
        continuation.finish()
    }
}

/// A consumer's deliveries one at a time: its batches, flattened.
public struct AMQPDeliveries: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    let batches: AsyncStream<[AMQPDelivery]>

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<[AMQPDelivery]>.AsyncIterator
        var buffer: [AMQPDelivery] = []
        var index = 0

        public mutating func next() async -> AMQPDelivery? {
            while index >= buffer.count {
                guard let batch = await base.next() else { return nil }
                buffer = batch
                index = 0
            }
            defer { index += 1 }
            return buffer[index]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: batches.makeAsyncIterator())
    }
}
