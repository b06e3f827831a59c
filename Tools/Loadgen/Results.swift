import AsyncHTTPClient
import Foundation
import Histogram
import NIOCore

/// Everything measured during a run. Latencies in microseconds in HDR histograms.
final class Results: @unchecked Sendable {
    // @unchecked Sendable: every field is only touched under `lock`.
    private let lock = NSLock()
    private var endToEnd = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    private var post = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    private var byKind: [OrderKind: Int] = [:]
    private var errors = 0
    private var errorSamples: [String] = []
    private var orderIds: [String] = []

    func posted(latency: Duration) {
        lock.withLock { _ = post.record(latency.microseconds) }
    }

    func finished(orderId: String, kind: OrderKind, latency: Duration) {
        lock.withLock {
            _ = endToEnd.record(latency.microseconds)
            byKind[kind, default: 0] += 1
            if orderIds.count < 10_000 { orderIds.append(orderId) }
        }
    }

    func error(_ description: String) {
        lock.withLock {
            errors += 1
            if errorSamples.count < 10 { errorSamples.append(description) }
        }
    }

    var snapshot: (done: Int, errors: Int, p50: Double, p99: Double) {
        lock.withLock {
            (
                Int(endToEnd.totalCount), errors, Double(endToEnd.valueAtPercentile(50)) / 1000,
                Double(endToEnd.valueAtPercentile(99)) / 1000
            )
        }
    }

    func sampleOrderIds(_ count: Int) -> [String] {
        lock.withLock { Array(orderIds.shuffled().prefix(count)) }
    }

    func report(elapsed: Double, mode: String, rate: Double?, concurrency: Int?, steps: [String: Summary]) -> Report {
        lock.withLock {
            let done = Int(endToEnd.totalCount)
            return Report(
                mode: mode, rate: rate, concurrency: concurrency, durationSeconds: elapsed, orders: done + errors,
                completed: byKind[.good] ?? 0,
                compensatedAsExpected: (byKind[.expiredCard] ?? 0) + (byKind[.quantity11] ?? 0),
                errors: errors, sagasPerSecond: Double(done) / max(elapsed, 0.001),
                endToEndMs: Summary(endToEnd), postMs: Summary(post), stepsMs: steps, errorSamples: errorSamples)
        }
    }

    /// A percentile spectrum (latency against 1 / (1 - percentile), log scale), as HdrHistogram plots it.
    func latencySVG(title: String) -> String {
        let points: [(Double, Double)] = lock.withLock {
            [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99].map {
                ($0, Double(endToEnd.valueAtPercentile($0)) / 1000)
            }
        }
        let width = 720.0, height = 420.0, left = 70.0, bottom = 50.0, top = 40.0, right = 20.0
        let maxX = log10(1 / (1 - 0.9999)), maxY = max(points.map(\.1).max() ?? 1, 1) * 1.1
        func x(_ percentile: Double) -> Double {
            left + (log10(1 / (1 - percentile / 100)) / maxX) * (width - left - right)
        }
        func y(_ ms: Double) -> Double { height - bottom - (ms / maxY) * (height - top - bottom) }
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="24" font-size="14" font-weight="bold">\(title)</text>
            <line x1="\(left)" y1="\(height - bottom)" x2="\(width - right)" y2="\(height - bottom)" stroke="black"/>
            <line x1="\(left)" y1="\(top)" x2="\(left)" y2="\(height - bottom)" stroke="black"/>
            <text x="\(width / 2)" y="\(height - 12)" text-anchor="middle">percentile</text>
            <text x="16" y="\(height / 2)" transform="rotate(-90 16 \(height / 2))" text-anchor="middle">end-to-end latency (ms)</text>

            """
        for percentile in [0.0, 90, 99, 99.9, 99.99] {
            let px = x(percentile)
            svg += "<line x1=\"\(px)\" y1=\"\(top)\" x2=\"\(px)\" y2=\"\(height - bottom)\" stroke=\"#ddd\"/>"
            svg +=
                "<text x=\"\(px)\" y=\"\(height - bottom + 16)\" text-anchor=\"middle\">\(percentile == 0 ? "0" : String(percentile))%</text>\n"
        }
        for step in 0...4 {
            let ms = maxY * Double(step) / 4
            svg +=
                "<text x=\"\(left - 6)\" y=\"\(y(ms) + 4)\" text-anchor=\"end\">\(String(format: "%.1f", ms))</text>\n"
        }
        let polyline = points.map { "\(x($0.0)),\(y($0.1))" }.joined(separator: " ")
        svg += "<polyline fill=\"none\" stroke=\"#d2691e\" stroke-width=\"2\" points=\"\(polyline)\"/>\n"
        for (percentile, ms) in points {
            svg +=
                "<circle cx=\"\(x(percentile))\" cy=\"\(y(ms))\" r=\"3\" fill=\"#d2691e\"><title>p\(percentile): \(String(format: "%.2f", ms)) ms</title></circle>\n"
        }
        return svg + "</svg>\n"
    }
}

/// Percentiles of a latency distribution, in milliseconds.
struct Summary: Codable, Sendable {
    var count: Int
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double
    var mean: Double

    init(_ histogram: Histogram<UInt64>) {
        count = Int(histogram.totalCount)
        p50 = Double(histogram.valueAtPercentile(50)) / 1000
        p90 = Double(histogram.valueAtPercentile(90)) / 1000
        p99 = Double(histogram.valueAtPercentile(99)) / 1000
        p999 = Double(histogram.valueAtPercentile(99.9)) / 1000
        max = Double(histogram.max) / 1000
        mean = histogram.mean / 1000
    }

    init(milliseconds values: [Double]) {
        var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        for value in values { _ = histogram.record(UInt64(Swift.max(value, 0) * 1000)) }
        self.init(histogram)
    }

    var line: String {
        String(
            format: "p50 %7.2f  p90 %7.2f  p99 %7.2f  p99.9 %7.2f  max %7.2f  (n=%d)", p50, p90, p99, p999, max, count)
    }
}

struct Report: Codable {
    var mode: String
    var rate: Double?
    var concurrency: Int?
    var durationSeconds: Double
    var orders: Int
    var completed: Int
    var compensatedAsExpected: Int
    var errors: Int
    var sagasPerSecond: Double
    var endToEndMs: Summary
    var postMs: Summary
    var stepsMs: [String: Summary]
    var errorSamples: [String]

    var title: String {
        mode == "open"
            ? String(format: "Open loop, %.0f orders/s: %.0f sagas/s", rate ?? 0, sagasPerSecond)
            : "Closed loop, \(concurrency ?? 0) in flight: \(String(format: "%.0f", sagasPerSecond)) sagas/s"
    }

    var text: String {
        var lines = [
            "",
            title,
            String(
                format: "orders %d in %.1f s: %d completed, %d compensated as expected, %d errors", orders,
                durationSeconds, completed, compensatedAsExpected, errors),
            "end to end (ms)  " + endToEndMs.line,
            "POST /orders (ms) " + postMs.line,
        ]
        for (step, summary) in stepsMs.sorted(by: { $0.key < $1.key }) {
            lines.append(step.padding(toLength: 18, withPad: " ", startingAt: 0) + summary.line)
        }
        lines += errorSamples.map { "error: \($0)" }
        return lines.joined(separator: "\n")
    }

    func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

/// Per-step latency from the orchestrator's saga histories (each step's reply time after its command).
enum StepLatency {
    struct Detail: Decodable {
        struct Line: Decodable {
            var step: String
            var kind: String
            var durationMs: Int?
        }
        var history: [Line]
    }

    static func sample(http: HTTPClient, orchestratorURL: String, orderIds: [String]) async -> [String: Summary] {
        var durations: [String: [Double]] = [:]
        for orderId in orderIds {
            var request = HTTPClientRequest(url: "\(orchestratorURL)/sagas/\(orderId)")
            // The saga timeline is an operator view; without the token the step sample stays empty.
            if let token = ProcessInfo.processInfo.environment["PETS_OPERATOR_TOKEN"] {
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
            }
            guard
                let response = try? await http.execute(request, timeout: .seconds(5)),
                response.status == .ok,
                let body = try? await response.body.collect(upTo: 1 << 20),
                let detail = try? JSONDecoder().decode(Detail.self, from: Data(body.readableBytesView))
            else { continue }
            for line in detail.history where ["succeeded", "failed", "compensated"].contains(line.kind) {
                if let duration = line.durationMs { durations[line.step, default: []].append(Double(duration)) }
            }
        }
        return durations.mapValues { Summary(milliseconds: $0) }
    }
}

/// A one-line progress bar on standard error.
final class Progress: @unchecked Sendable {
    // @unchecked Sendable: `task` is set once before the printing starts and cancelled once.
    private let results: Results
    private let target: Int?
    private var task: Task<Void, Never>?
    private let started = ContinuousClock.now

    init(results: Results, target: Int?) {
        self.results = results
        self.target = target
    }

    func start() {
        task = Task { [results, target, started] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(500))
                let (done, errors, p50, p99) = results.snapshot
                let elapsed = (ContinuousClock.now - started).seconds
                var bar = ""
                if let target, target > 0 {
                    let filled = min(30, (done + errors) * 30 / target)
                    bar =
                        "[" + String(repeating: "=", count: filled) + String(repeating: " ", count: 30 - filled) + "] "
                }
                let line = String(
                    format: "\r%@%d done, %d errors, %.0f/s, p50 %.1f ms, p99 %.1f ms   ", bar, done, errors,
                    Double(done) / max(elapsed, 0.001), p50, p99)
                FileHandle.standardError.write(Data(line.utf8))
            }
        }
    }

    func stop() {
        task?.cancel()
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

extension Duration {
    var microseconds: UInt64 {
        UInt64(max(0, Double(components.seconds) * 1e6 + Double(components.attoseconds) / 1e12))
    }
}
