import ArgumentParser
import AsyncHTTPClient
import Foundation
import Histogram
import Logging
import NIOCore

/// Places orders through the REST API and follows each one over its WebSocket to the final message.
@main
struct Loadgen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load the AWSomePets shop: place orders and follow each to its final status.",
        discussion: """
            Closed loop (--concurrency N orders in flight) or open loop (--rate R orders per second, latency measured \
            from each order's intended start so queueing is not hidden). End-to-end latency runs from the POST to the \
            final WebSocket message. Prints a summary; --json and --svg write the results and a latency plot.
            """)

    @Option(help: "The Order service's base URL.") var url = "http://127.0.0.1:8080"
    @Option(help: "The Orchestrator's base URL, for per-step latency from saga histories.")
    var orchestratorUrl = "http://127.0.0.1:8084"
    @Option(help: "Orders in flight (closed loop). Ignored with --rate.") var concurrency = 8
    @Option(help: "Arrival rate in orders per second (open loop).") var rate: Double?
    @Option(help: "How many orders to place (closed loop) unless --duration is given.") var orders = 1_000
    @Option(help: "Run for this many seconds instead of a count.") var duration: Double?
    @Option(help: "Percent of good orders, expired cards and quantity-11 orders.") var mix = "80,10,10"
    @Option(help: "Seconds an order may take to reach its final message before it counts as an error.")
    var timeout: Double = 30
    @Option(help: "Orders whose saga history is sampled for per-step latency.") var stepSamples = 200
    @Option(help: "Write the results as JSON to this file.") var json: String?
    @Option(help: "Write an SVG latency plot (percentile spectrum) to this file.") var svg: String?
    @Flag(help: "No progress bar.") var quiet = false

    func run() async throws {
        let weights = mix.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard weights.count == 3, weights.allSatisfy({ $0 >= 0 }), weights.reduce(0, +) > 0 else {
            throw ValidationError("--mix takes three numbers: good, expired card, quantity 11 (e.g. 80,10,10)")
        }
        let http = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(
                timeout: .init(connect: .seconds(5), read: .seconds(30)),
                connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)))
        var logger = Logger(label: "loadgen")
        logger.logLevel = .critical
        do {
            try await run(http: http, logger: logger)
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    private func run(http: HTTPClient, logger: Logger) async throws {
        let weights = mix.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        let shop = ShopClient(http: http, baseURL: url, logger: logger)
        let catalogue = try await shop.catalogue()
        guard !catalogue.isEmpty else { throw ValidationError("the catalogue at \(url) is empty") }
        let factory = OrderFactory(catalogue: catalogue, weights: weights)
        let results = Results()
        let progress =
            quiet ? nil : Progress(results: results, target: rate == nil ? (duration == nil ? orders : nil) : nil)
        progress?.start()

        let started = ContinuousClock.now
        let end = duration.map { started + .seconds($0) }
        if let rate {
            guard rate > 0 else { throw ValidationError("--rate must be positive") }
            try await openLoop(
                rate: rate, until: end ?? started + .seconds(Double(orders) / rate), shop: shop, factory: factory,
                results: results)
        } else {
            try await closedLoop(shop: shop, factory: factory, results: results, until: end)
        }
        let elapsed = (ContinuousClock.now - started).seconds
        progress?.stop()

        let steps = await StepLatency.sample(
            http: http, orchestratorURL: orchestratorUrl, orderIds: results.sampleOrderIds(stepSamples))
        let report = results.report(
            elapsed: elapsed, mode: rate == nil ? "closed" : "open", rate: rate,
            concurrency: rate == nil ? concurrency : nil,
            steps: steps)
        print(report.text)
        if let json {
            try report.jsonData().write(to: URL(fileURLWithPath: json))
        }
        if let svg {
            try Data(results.latencySVG(title: report.title).utf8).write(to: URL(fileURLWithPath: svg))
        }
    }

    private func closedLoop(
        shop: ShopClient, factory: OrderFactory, results: Results, until end: ContinuousClock.Instant?
    ) async throws {
        let counter = Counter(limit: end == nil ? orders : Int.max)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while counter.next() {
                        if let end, ContinuousClock.now >= end { return }
                        let kind = factory.nextKind()
                        let start = ContinuousClock.now
                        await shop.placeAndFollow(
                            factory.body(kind), kind: kind, intendedStart: start, timeout: timeout, results: results)
                    }
                }
            }
        }
    }

    private func openLoop(
        rate: Double, until end: ContinuousClock.Instant, shop: ShopClient, factory: OrderFactory, results: Results
    ) async throws {
        let interval = Duration.seconds(1 / rate)
        await withTaskGroup(of: Void.self) { group in
            var next = ContinuousClock.now
            while next < end {
                // Latency counts from when the order should have started, so a late sender shows up as latency.
                let intended = next
                let kind = factory.nextKind()
                let body = factory.body(kind)
                group.addTask {
                    await shop.placeAndFollow(
                        body, kind: kind, intendedStart: intended, timeout: timeout, results: results)
                }
                next = next + interval
                if next > ContinuousClock.now { try? await Task.sleep(until: next, clock: .continuous) }
            }
        }
    }
}

/// Hands out order numbers to closed-loop workers.
final class Counter: @unchecked Sendable {
    // @unchecked Sendable: `issued` is only touched under `lock`.
    private let lock = NSLock()
    private var issued = 0
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    func next() -> Bool {
        lock.withLock {
            guard issued < limit else { return false }
            issued += 1
            return true
        }
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
