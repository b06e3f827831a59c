import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Consumes one queue on a connection and a thread of its own, with manual acks and a bounded prefetch.
///
/// Deliveries arrive through `deliveries`, an `AsyncSequence`; each is settled with `AMQPDelivery.settle(_:)`, which
/// hands the ack back to the consumer's thread (a connection is never used from two threads). When the broker goes
/// away the thread reconnects with backoff, redeclares the topology and consumes again; unacked deliveries of the
/// lost connection are redelivered by the broker, so settlements for them are dropped.
public final class AMQPConsumer: @unchecked Sendable {
    // @unchecked Sendable: mutable fields are guarded by `lock`; the connection is only touched by the thread.
    private let configuration: AMQPConfiguration
    private let topology: AMQPTopology
    private let queue: String
    private let prefetch: UInt16
    private let logger: Logger
    private let onConnect: (@Sendable () -> Void)?
    private let lock = NSLock()
    private var pendingSettlements: [(generation: UInt64, tag: UInt64, settlement: DeliverySettlement)] = []
    private var generation: UInt64 = 0
    private var started = false
    private var stopped = false
    private var connected = false
    private let wakePipe: (read: Int32, write: Int32)
    private let stream: AsyncStream<AMQPDelivery>
    private let continuation: AsyncStream<AMQPDelivery>.Continuation
    private let finished = DispatchSemaphore(value: 0)
    private var exited = false
    private var exitWaiters: [CheckedContinuation<Void, Never>] = []

    /// - Parameters:
    ///   - queue: the queue to consume; for an exclusive queue, the label it has in `topology`.
    ///   - onConnect: called on the consumer's thread after every (re)connect, before deliveries flow; a hook for
    ///     work that must follow a gap, such as refreshing state that a fan-out queue may have missed.
    public init(
        configuration: AMQPConfiguration,
        topology: AMQPTopology,
        queue: String,
        prefetch: UInt16 = 64,
        logger: Logger,
        onConnect: (@Sendable () -> Void)? = nil
    ) {
        self.configuration = configuration
        self.topology = topology
        self.queue = queue
        self.prefetch = prefetch
        self.logger = logger
        self.onConnect = onConnect
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
            _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        }
        self.wakePipe = (fds[0], fds[1])
        (stream, continuation) = AsyncStream.makeStream(of: AMQPDelivery.self)
    }

    deinit {
        close(wakePipe.read)
        close(wakePipe.write)
    }

    /// The deliveries, in the order the broker sent them. One reader; the thread starts on first use.
    public var deliveries: AsyncStream<AMQPDelivery> {
        start()
        return stream
    }

    /// True while the consumer holds a working connection.
    public var isConnected: Bool {
        lock.withLock { connected }
    }

    public func start() {
        let shouldStart = lock.withLock {
            if started { return false }
            started = true
            return true
        }
        guard shouldStart else { return }
        let thread = Thread { [self] in run() }
        thread.name = "amqp-consumer-\(queue)"
        thread.start()
    }

    /// Settles what is pending, closes the connection and ends `deliveries`. Returns when the thread has stopped.
    public func shutdown() {
        let wasStarted = lock.withLock {
            stopped = true
            return started
        }
        wake()
        if wasStarted { finished.wait() } else { continuation.finish() }
    }

    /// `shutdown()` for async callers: waits for the thread without blocking one of the caller's threads.
    public func stop() async {
        let wasStarted = lock.withLock {
            stopped = true
            return started
        }
        wake()
        guard wasStarted else {
            continuation.finish()
            return
        }
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let done = lock.withLock {
                if exited { return true }
                exitWaiters.append(waiter)
                return false
            }
            if done { waiter.resume() }
        }
    }

    private func settle(generation: UInt64, tag: UInt64, settlement: DeliverySettlement) {
        lock.withLock { pendingSettlements.append((generation, tag, settlement)) }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakePipe.write, &byte, 1)
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    private func run() {
        defer {
            continuation.finish()
            finished.signal()
            let waiters = lock.withLock {
                exited = true
                defer { exitWaiters = [] }
                return exitWaiters
            }
            waiters.forEach { $0.resume() }
        }
        var backoff = 0.1
        while !isStopped {
            var connection: BlockingConnection?
            do {
                let fresh = try BlockingConnection(configuration: configuration, confirms: false)
                connection = fresh
                try fresh.declare(topology)
                try fresh.startConsuming(queue: queue, prefetch: prefetch)
                let currentGeneration = lock.withLock {
                    generation += 1
                    connected = true
                    pendingSettlements.removeAll()
                    return generation
                }
                logger.info("consuming", metadata: ["queue": "\(fresh.queueName(queue))"])
                backoff = 0.1
                onConnect?()
                try consume(on: fresh, generation: currentGeneration)
                // Stopped: settle what the handlers finished, then say goodbye.
                try applySettlements(on: fresh, generation: currentGeneration)
                fresh.close(polite: true)
                connection = nil
            } catch {
                connection?.close(polite: false)
                lock.withLock { connected = false }
                guard !isStopped else { break }
                logger.warning(
                    "consumer lost its connection; reconnecting",
                    metadata: ["queue": "\(queue)", "error": "\(error)", "retryIn": "\(backoff)s"])
                sleepInterruptibly(seconds: backoff)
                backoff = min(backoff * 2, 5)
            }
        }
        lock.withLock { connected = false }
    }

    private func consume(on connection: BlockingConnection, generation: UInt64) throws {
        let settler: @Sendable (UInt64, UInt64, DeliverySettlement) -> Void = {
            [weak self] generation, tag, settlement in
            self?.settle(generation: generation, tag: tag, settlement: settlement)
        }
        while !isStopped {
            try applySettlements(on: connection, generation: generation)
            if !connection.hasBufferedData {
                guard try waitReadable(connection.socketDescriptor) else { continue }
            }
            // Data is arriving: the rest of a message follows at once, so a long timeout only guards a dead peer.
            guard let received = try connection.receive(timeoutSeconds: 30) else { continue }
            continuation.yield(
                AMQPDelivery(
                    message: received.message,
                    queue: queue,
                    exchange: received.exchange,
                    routingKey: received.routingKey,
                    redelivered: received.redelivered,
                    deliveryCount: received.deliveryCount,
                    deliveryTag: received.deliveryTag,
                    generation: generation,
                    settler: settler
                ))
        }
    }

    private func applySettlements(on connection: BlockingConnection, generation: UInt64) throws {
        let settlements = lock.withLock {
            let taken = pendingSettlements
            pendingSettlements.removeAll()
            return taken
        }
        for item in settlements where item.generation == generation {
            try connection.settle(deliveryTag: item.tag, item.settlement)
        }
    }

    /// Polls the socket and the wake pipe; true when the socket has data.
    private func waitReadable(_ socket: Int32) throws -> Bool {
        var fds = [
            pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&fds, 2, 1000)
        if ready < 0 {
            if errno == EINTR { return false }
            throw AMQPError(.connectionClosed, "poll failed: errno \(errno)")
        }
        if fds[1].revents != 0 { drainWakePipe() }
        if fds[0].revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 && fds[0].revents & Int16(POLLIN) == 0 {
            throw AMQPError(.connectionClosed, "the socket to the broker closed")
        }
        return fds[0].revents & Int16(POLLIN) != 0
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakePipe.read, &buffer, buffer.count) > 0 {}
    }

    private func sleepInterruptibly(seconds: Double) {
        var fds = [pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 1, Int32(seconds * 1000))
        drainWakePipe()
    }
}
