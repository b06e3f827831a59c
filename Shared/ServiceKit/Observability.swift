import Logging
import Metrics
import Prometheus

/// Logging and metrics for a process, set up once.
public enum Observability {
    /// The registry `/metrics` renders. Bootstrapping the metrics system happens on first use, once per process.
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let milliseconds: [Int64] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_000, 5_000, 10_000, 30_000]
        factory.defaultDurationHistogramBuckets = milliseconds.map { Duration.milliseconds($0) }
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// Structured logs to standard error (`key=value` metadata) and the metrics registry; call once, first thing
    /// in `main`, before any counter is created (a counter made earlier would record into nothing).
    public static func bootstrap(level: Logger.Level) {
        _ = registry
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    public static func logger(_ label: String, level: Logger.Level) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
