// swift-tools-version:6.0
import PackageDescription

// The products targets name more than once.
var logging: Target.Dependency { .product(name: "Logging", package: "swift-log") }
var metrics: Target.Dependency { .product(name: "Metrics", package: "swift-metrics") }
var postgres: Target.Dependency { .product(name: "PostgresNIO", package: "postgres-nio") }
var lifecycle: Target.Dependency { .product(name: "ServiceLifecycle", package: "swift-service-lifecycle") }
var nioCore: Target.Dependency { .product(name: "NIOCore", package: "swift-nio") }
var nioPosix: Target.Dependency { .product(name: "NIOPosix", package: "swift-nio") }
var hummingbird: Target.Dependency { .product(name: "Hummingbird", package: "hummingbird") }
var hummingbirdCore: Target.Dependency { .product(name: "HummingbirdCore", package: "hummingbird") }
var httpTypes: Target.Dependency { .product(name: "HTTPTypes", package: "swift-http-types") }
var crypto: Target.Dependency { .product(name: "Crypto", package: "swift-crypto") }

let package = Package(
    name: "AWSomePets",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "Order", targets: ["Order"]),
        .executable(name: "Inventory", targets: ["Inventory"]),
        .executable(name: "Payment", targets: ["Payment"]),
        .executable(name: "Orchestrator", targets: ["Orchestrator"]),
        .executable(name: "Notifier", targets: ["Notifier"]),
        .executable(name: "Loadgen", targets: ["Loadgen"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    // Every target names each module it imports (scripts/lib.sh builds with
    // `--explicit-target-dependency-import-check error`, so an undeclared import fails the build).
    targets: [
        // rabbitmq-c (Debian's librabbitmq-dev) as a system library.
        .systemLibrary(
            name: "CRabbitMQ",
            path: "Shared/CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // The AMQP client: one connection and one I/O thread per service over rabbitmq-c.
        .target(
            name: "AMQP",
            dependencies: ["CRabbitMQ", logging],
            path: "Shared/AMQP"
        ),
        // Message contracts: the commands, replies and events every service agrees on.
        .target(
            name: "Messaging",
            dependencies: [],
            path: "Shared/Messaging"
        ),
        // What every layer's reliability leans on: deadlines on waits, and faults injected for the tests.
        .target(
            name: "Reliability",
            dependencies: [],
            path: "Shared/Reliability"
        ),
        // PostgreSQL plumbing: migrations, transactional outbox, inbox, outbox relay, retention.
        .target(
            name: "Persistence",
            dependencies: ["AMQP", "Messaging", "Reliability", logging, metrics, nioCore, postgres, lifecycle],
            path: "Shared/Persistence"
        ),
        // The saga engine: definitions and a pure state machine.
        .target(
            name: "SagaEngine",
            dependencies: ["Messaging"],
            path: "Shared/SagaEngine"
        ),
        // Service plumbing: configuration, health and metrics endpoints, consumers, access and limits.
        .target(
            name: "ServiceKit",
            dependencies: [
                "AMQP", "Messaging", "Persistence", "Reliability", httpTypes, hummingbird, hummingbirdCore, logging,
                metrics, nioCore, nioPosix, postgres, lifecycle, crypto,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Shared/ServiceKit"
        ),
        .executableTarget(
            name: "Order",
            dependencies: [
                "AMQP", "Messaging", "Persistence", "Reliability", "ServiceKit", crypto, httpTypes, hummingbird,
                logging, metrics, nioCore, postgres, lifecycle,
            ],
            path: "Services/Order"
        ),
        .executableTarget(
            name: "Inventory",
            dependencies: ["AMQP", "Messaging", "Persistence", "ServiceKit", hummingbird, logging, postgres],
            path: "Services/Inventory"
        ),
        .executableTarget(
            name: "Payment",
            dependencies: ["Messaging", "Persistence", "ServiceKit", hummingbird, logging, postgres],
            path: "Services/Payment"
        ),
        .executableTarget(
            name: "Orchestrator",
            dependencies: [
                "AMQP", "Messaging", "Persistence", "Reliability", "SagaEngine", "ServiceKit", hummingbird, logging,
                metrics, postgres, lifecycle,
            ],
            path: "Services/Orchestrator"
        ),
        .executableTarget(
            name: "Notifier",
            dependencies: [
                "AMQP", "Messaging", "Reliability", "ServiceKit", hummingbird, hummingbirdCore, logging, metrics,
                nioCore, lifecycle,
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Services/Notifier"
        ),
        // The load tool: places orders over REST and follows each over its WebSocket to the final message.
        .executableTarget(
            name: "Loadgen",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                logging, nioCore,
            ],
            path: "Tools/Loadgen"
        ),
        // The AMQP client's I/O-loop bookkeeping; no broker needed.
        .testTarget(
            name: "AMQPTests",
            dependencies: ["AMQP"],
            path: "Tests/AMQPTests"
        ),
        // The outbox relay's bookkeeping; no database needed.
        .testTarget(
            name: "PersistenceTests",
            dependencies: ["Persistence"],
            path: "Tests/PersistenceTests"
        ),
        .testTarget(
            name: "SagaEngineTests",
            dependencies: ["SagaEngine", "Messaging", "Orchestrator"],
            path: "Tests/SagaEngineTests"
        ),
        // The doors, without servers: secrets policy, masking, origins, session caps, the broker definitions.
        .testTarget(
            name: "ServiceKitTests",
            dependencies: ["ServiceKit", "AMQP", "Messaging", "Notifier", hummingbird],
            path: "Tests/ServiceKitTests"
        ),
        // Against the real RabbitMQ and PostgreSQL that scripts/test starts; disabled without them.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "AMQP", "Messaging", "Persistence", "ServiceKit", "Inventory", "Payment", "Order", logging, postgres,
            ],
            path: "Tests/IntegrationTests"
        ),
    ]
)
