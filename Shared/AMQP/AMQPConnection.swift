import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One broker connection and the one thread that owns it: the thread publishes (channel 1, publisher confirms),
/// consumes every queue a consumer registered (one channel each, manual acks, bounded prefetch) and keeps the
/// connection alive with heartbeats.
///
/// The thread waits on the socket and a wake pipe. Each turn it takes what callers handed over (publishes,
/// settlements, consumers starting or stopping), sends it, then reads every frame the socket has: deliveries go to
/// their consumer as one batch per turn, confirms resolve their callers as they come (nothing waits for a whole
/// batch), and rabbitmq-c sends heartbeats and notices a silent broker inside those reads. A connection that fails
/// or falls silent is dropped: waiting publishes fail as unknown (the outbox sends them again), deliveries not yet
/// acked come again, and the thread connects to the next node of the configuration with backoff.
public final class AMQPConnection: @unchecked Sendable {
    // @unchecked Sendable: the fields under "guarded by lock" are only touched under `lock`; `state`, `inflight`
    // and the C connection only on the connection's thread.
    private let configuration: AMQPConfiguration
    private let topology: AMQPTopology
    private let confirms: Bool
    private let confirmTimeoutSeconds: Double
    private let logger: Logger
    private let onConnect: (@Sendable () -> Void)?
    private let wakePipe: (read: Int32, write: Int32)

    private struct PublishJob {
        var id: Int
        var messages: [OutgoingMessage]
        var continuation: CheckedContinuation<Void, Error>
    }

    private struct Settlement {
        var consumer: ObjectIdentifier
        var generation: UInt64
        var tag: UInt64
        var settlement: DeliverySettlement
    }

    // Guarded by lock.
    private let lock = NSLock()
    private var jobs: [PublishJob] = []
    private var settlements: [Settlement] = []
    private var consumers: [ObjectIdentifier: AMQPConsumer] = [:]
    private var consumerChanges = false
    private var nextJobID = 0
    private var started = false
    private var stopping = false
    private var exited = false
    private var connected = false
    private var wakePending = false
    private var exitWaiters: [CheckedContinuation<Void, Never>] = []
    private let finished = DispatchSemaphore(value: 0)

    // The thread's own.
    private var state = ConnectionState()
    private var inflight: [Int: CheckedContinuation<Void, Error>] = [:]
    private var channels: [ObjectIdentifier: UInt16] = [:]
    private var consumerOfChannel: [UInt16: AMQPConsumer] = [:]
    private var generation: UInt64 = 0
    private var endpointIndex = 0

    /// - Parameters:
    ///   - confirms: publish with publisher confirms (off only for connections that never publish).
    ///   - onConnect: called on the connection's thread after every (re)connect, once consumers consume again; a
    ///     hook for work that must follow a gap, such as refreshing what a fan-out queue may have missed.
    public init(
        configuration: AMQPConfiguration,
        topology: AMQPTopology,
        confirms: Bool = true,
        confirmTimeoutSeconds: Double = 10,
        logger: Logger,
        onConnect: (@Sendable () -> Void)? = nil
    ) {
        self.configuration = configuration
        self.topology = topology
        self.confirms = confirms
        self.confirmTimeoutSeconds = confirmTimeoutSeconds
        self.logger = logger
        self.onConnect = onConnect
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
            _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        }
        wakePipe = (fds[0], fds[1])
    }

    deinit {
        close(wakePipe.read)
        close(wakePipe.write)
    }

    /// True while the connection is up (logged in, topology declared, consumers consuming).
    public var isConnected: Bool { lock.withLock { connected } }

    /// A consumer of `queue` on this connection; it consumes once started (`AMQPConsumer.start()`).
    public func consumer(queue: String, prefetch: UInt16 = 64) -> AMQPConsumer {
        AMQPConsumer(connection: self, queue: queue, prefetch: prefetch, ownsConnection: false)
    }

    /// Starts the connection's thread; idempotent.
    public func start() {
        let shouldStart = lock.withLock {
            if started || stopping { return false }
            started = true
            return true
        }
        guard shouldStart else { return }
        let thread = Thread { [self] in run() }
        thread.name = "amqp-\(configuration.connectionName)"
        thread.start()
    }

    /// Publishes `messages` and returns once the broker confirmed all of them; throws when one was refused, no
    /// confirm came in time, or the connection failed first (then the broker may or may not have them).
    public func publish(_ messages: [OutgoingMessage]) async throws {
        guard !messages.isEmpty else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            let accepted = lock.withLock {
                guard !stopping else { return false }
                nextJobID += 1
                jobs.append(PublishJob(id: nextJobID, messages: messages, continuation: continuation))
                return true
            }
            guard accepted else {
                continuation.resume(throwing: AMQPError(.shutdown, "the AMQP connection is shut down"))
                return
            }
            start()
            wake()
        }
    }

    /// Settles what the consumers finished, closes the connection and ends every consumer's stream. Returns when
    /// the thread has stopped; blocks the caller (use `stop()` from async code).
    public func shutdown() {
        guard requestStop() else { return }
        finished.wait()
        finished.signal()
    }

    /// `shutdown()` for async callers: waits for the thread without blocking one of the caller's threads.
    public func stop() async {
        guard requestStop() else { return }
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let done = lock.withLock {
                if exited { return true }
                exitWaiters.append(waiter)
                return false
            }
            if done { waiter.resume() }
        }
    }

    /// Marks the connection stopping; false when its thread never ran (nothing to wait for).
    private func requestStop() -> Bool {
        let (wasStarted, orphans) = lock.withLock {
            stopping = true
            return (started, started ? [] : Array(consumers.values))
        }
        orphans.forEach { $0.finish() }
        wake()
        return wasStarted
    }

    // MARK: Called by consumers

    func register(_ consumer: AMQPConsumer) {
        let stopped = lock.withLock {
            if stopping { return true }
            consumers[ObjectIdentifier(consumer)] = consumer
            consumerChanges = true
            return false
        }
        if stopped {
            consumer.finish()
            return
        }
        start()
        wake()
    }

    func unregister(_ consumer: AMQPConsumer) {
        lock.withLock {
            consumers[ObjectIdentifier(consumer)] = nil
            consumerChanges = true
        }
        wake()
    }

    func settle(_ consumer: AMQPConsumer, generation: UInt64, tags: [UInt64], _ settlement: DeliverySettlement) {
        let id = ObjectIdentifier(consumer)
        lock.withLock {
            for tag in tags {
                settlements.append(Settlement(consumer: id, generation: generation, tag: tag, settlement: settlement))
            }
        }
        wake()
    }

    /// Wakes the thread unless a wake-up is already on its way: one pipe write per turn, however many callers.
    private func wake() {
        let write = lock.withLock {
            if wakePending { return false }
            wakePending = true
            return true
        }
        guard write else { return }
        var byte: UInt8 = 1
        _ = Glibc.write(wakePipe.write, &byte, 1)
    }

    // MARK: The thread

    private func run() {
        defer { exit() }
        var backoff = 0.1
        while !isStopping {
            let endpoint = configuration.endpoints[endpointIndex % configuration.endpoints.count]
            var connection: BlockingConnection?
            do {
                let fresh = try BlockingConnection(endpoint: endpoint, configuration: configuration, confirms: confirms)
                connection = fresh
                try fresh.declare(topology, quorumReplicas: configuration.quorumReplicas)
                generation += 1
                try syncConsumers(on: fresh, reopenAll: true)
                lock.withLock { connected = true }
                logger.info(
                    "connected to the broker",
                    metadata: [
                        "node": "\(endpoint)", "heartbeat": "\(fresh.heartbeatSeconds)s",
                        "consumers": "\(consumerOfChannel.count)",
                    ])
                backoff = 0.1
                onConnect?()
                try serve(fresh)
                fresh.close(polite: true)
                connection = nil
            } catch {
                connection?.close(polite: false)
                lock.withLock { connected = false }
                resolve(state.connectionLost())
                dropChannels()
                failQueuedJobs(error)
                guard !isStopping else { break }
                endpointIndex += 1
                let next = configuration.endpoints[endpointIndex % configuration.endpoints.count]
                logger.warning(
                    "broker connection lost; reconnecting",
                    metadata: ["node": "\(endpoint)", "next": "\(next)", "error": "\(error)", "retryIn": "\(backoff)s"])
                sleepInterruptibly(seconds: backoff)
                // A cluster has other nodes to try at once; one node only waits longer each time.
                if configuration.endpoints.count == 1 || endpointIndex % configuration.endpoints.count == 0 {
                    backoff = min(backoff * 2, maximumBackoff)
                }
            }
        }
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    /// The longest pause between reconnects: 5 s, or one heartbeat interval when that is shorter, so a connection
    /// is back within a few intervals of the network coming back.
    private var maximumBackoff: Double {
        let heartbeat = Double(configuration.heartbeatSeconds)
        return heartbeat > 0 ? min(5, max(1, heartbeat)) : 5
    }

    private func exit() {
        lock.withLock { connected = false }
        resolve(state.connectionLost())
        failQueuedJobs(AMQPError(.shutdown, "the AMQP connection shut down"))
        let (remaining, waiters) = lock.withLock {
            exited = true
            stopping = true
            defer { exitWaiters = [] }
            return (Array(consumers.values), exitWaiters)
        }
        remaining.forEach { $0.finish() }
        consumerOfChannel.values.forEach { $0.finish() }
        finished.signal()
        waiters.forEach { $0.resume() }
    }

    /// The connected loop; returns when asked to stop (after settling and confirming what it could).
    private func serve(_ connection: BlockingConnection) throws {
        let heartbeat = Double(connection.heartbeatSeconds)
        // rabbitmq-c sends a heartbeat or notices a silent broker only inside a read: read at least this often.
        let tick = heartbeat > 0 ? max(0.05, heartbeat / 4) : 1.0
        var lastRead = Monotonic.now()
        while true {
            let (newJobs, newSettlements, stop) = takeWork()
            try applySettlements(newSettlements, on: connection)
            try syncConsumers(on: connection, reopenAll: false)
            try send(newJobs, on: connection)
            let now = Monotonic.now()
            resolve(state.expire(now: now))
            if stop {
                try finishBeforeClosing(connection)
                return
            }
            var timeout = lastRead + tick - now
            if let deadline = state.nextDeadline { timeout = min(timeout, deadline - now) }
            if connection.hasBufferedData || waitReadable(connection.socketDescriptor, timeout: max(0, timeout))
                || Monotonic.now() >= lastRead + tick
            {
                try read(connection)
                lastRead = Monotonic.now()
            }
        }
    }

    /// Reads every frame the socket has now and hands deliveries over, one batch per consumer.
    private func read(_ connection: BlockingConnection) throws {
        var batches: [UInt16: [AMQPDelivery]] = [:]
        defer {
            for (channel, batch) in batches { consumerOfChannel[channel]?.yield(batch) }
        }
        while let event = try connection.nextEvent() {
            switch event {
            case .delivery(let channel, let received):
                guard let consumer = consumerOfChannel[channel] else { continue }
                state.delivered(channel: channel, tag: received.deliveryTag)
                batches[channel, default: []].append(
                    AMQPDelivery(
                        message: received.message, queue: consumer.queue, exchange: received.exchange,
                        routingKey: received.routingKey, redelivered: received.redelivered,
                        deliveryCount: received.deliveryCount, deliveryTag: received.deliveryTag,
                        generation: generation, consumer: consumer))
            case .confirm(let tag, let multiple, let ack):
                resolve(state.confirmed(tag: tag, multiple: multiple, ack: ack))
            case .other:
                continue
            }
            if !connection.hasBufferedData { break }
        }
        connection.releaseBuffers()
    }

    private func takeWork() -> ([PublishJob], [Settlement], Bool) {
        var byte = [UInt8](repeating: 0, count: 64)
        while Glibc.read(wakePipe.read, &byte, byte.count) > 0 {}
        return lock.withLock {
            wakePending = false
            defer {
                jobs = []
                settlements = []
            }
            return (jobs, settlements, stopping)
        }
    }

    private func send(_ jobs: [PublishJob], on connection: BlockingConnection) throws {
        guard !jobs.isEmpty else { return }
        let deadline = Monotonic.now() + confirmTimeoutSeconds
        for (index, job) in jobs.enumerated() {
            do {
                for message in job.messages { try connection.publish(message) }
            } catch {
                // The socket failed part way: this job and the ones not sent yet fail, the connection is dropped.
                job.continuation.resume(throwing: error)
                jobs[(index + 1)...].forEach { $0.continuation.resume(throwing: error) }
                throw error
            }
            if confirms {
                inflight[job.id] = job.continuation
                state.published(job: job.id, count: job.messages.count, deadline: deadline)
            } else {
                job.continuation.resume()
            }
        }
    }

    private func applySettlements(_ requests: [Settlement], on connection: BlockingConnection) throws {
        guard !requests.isEmpty else { return }
        let current = requests.compactMap {
            request -> (channel: UInt16, tag: UInt64, settlement: DeliverySettlement)? in
            // A settlement for a lost connection is dropped: the broker redelivers that message.
            guard request.generation == generation, let channel = channels[request.consumer] else { return nil }
            return (channel, request.tag, request.settlement)
        }
        for action in state.settle(current) {
            try connection.settle(
                channel: action.channel, deliveryTag: action.tag, action.settlement, multiple: action.multiple)
        }
    }

    /// Opens a channel and consumes for each consumer that started, closes the channels of those that stopped.
    private func syncConsumers(on connection: BlockingConnection, reopenAll: Bool) throws {
        let wanted: [ObjectIdentifier: AMQPConsumer]? = lock.withLock {
            guard consumerChanges || reopenAll else { return nil }
            consumerChanges = false
            return consumers
        }
        guard let wanted else { return }
        if reopenAll { dropChannels() }
        for (id, channel) in channels where wanted[id] == nil {
            try connection.closeChannel(channel)
            state.closed(channel: channel)
            channels[id] = nil
            consumerOfChannel[channel]?.finish()
            consumerOfChannel[channel] = nil
        }
        for (id, consumer) in wanted.sorted(by: { $0.value.queue < $1.value.queue }) where channels[id] == nil {
            let channel = (UInt16(2)...).first { consumerOfChannel[$0] == nil }!
            try connection.openChannel(channel)
            try connection.startConsuming(queue: consumer.queue, prefetch: consumer.prefetch, channel: channel)
            channels[id] = channel
            consumerOfChannel[channel] = consumer
            consumer.connected(generation: generation)
        }
    }

    private func dropChannels() {
        for consumer in consumerOfChannel.values { consumer.disconnected() }
        channels = [:]
        consumerOfChannel = [:]
    }

    /// At shutdown: settle what the handlers finished and wait (briefly) for outstanding confirms.
    private func finishBeforeClosing(_ connection: BlockingConnection) throws {
        let (_, lastSettlements, _) = takeWork()
        try applySettlements(lastSettlements, on: connection)
        let deadline = Monotonic.now() + min(confirmTimeoutSeconds, 5)
        while state.pendingJobs > 0 && Monotonic.now() < deadline {
            if connection.hasBufferedData
                || waitReadable(connection.socketDescriptor, timeout: deadline - Monotonic.now())
            {
                try read(connection)
            }
        }
    }

    private func resolve(_ outcomes: [(job: Int, outcome: ConnectionState.PublishOutcome)]) {
        for (job, outcome) in outcomes {
            guard let continuation = inflight.removeValue(forKey: job) else { continue }
            switch outcome {
            case .confirmed:
                continuation.resume()
            case .nacked:
                continuation.resume(throwing: AMQPError(.publishNacked, "the broker refused a message of this batch"))
            case .timedOut:
                continuation.resume(
                    throwing: AMQPError(.confirmTimeout, "no confirm within \(confirmTimeoutSeconds) s"))
            case .unknown:
                continuation.resume(
                    throwing: AMQPError(.connectionClosed, "the connection failed before the broker confirmed"))
            }
        }
    }

    /// Publishes handed over while there is no connection fail at once: their callers keep the outbox rows.
    private func failQueuedJobs(_ error: Error) {
        let queued = lock.withLock {
            defer { jobs = [] }
            return jobs
        }
        queued.forEach { $0.continuation.resume(throwing: error) }
    }

    /// Polls the socket and the wake pipe; true when the socket has data (or failed: the read then says how).
    private func waitReadable(_ socket: Int32, timeout: Double) -> Bool {
        var fds = [
            pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&fds, 2, Int32((timeout * 1000).rounded(.up)))
        guard ready > 0 else { return false }
        return fds[0].revents != 0
    }

    private func sleepInterruptibly(seconds: Double) {
        var fds = [pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 1, Int32(seconds * 1000))
        // Publishes that arrived meanwhile fail at once rather than wait for a connection.
        failQueuedJobs(AMQPError(.connectionFailed, "no broker connection (reconnecting)"))
        lock.withLock { wakePending = false }
        var byte = [UInt8](repeating: 0, count: 64)
        while Glibc.read(wakePipe.read, &byte, byte.count) > 0 {}
    }
}
