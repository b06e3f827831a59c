// swift-tools-version:6.0
import PackageDescription

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
    ],
    targets: [
        // rabbitmq-c (Debian's librabbitmq-dev) as a system library.
        .systemLibrary(
            name: "CRabbitMQ",
            path: "Shared/CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // The AMQP client: blocking C calls on threads of their own, surfaced as async APIs.
        .target(
            name: "AMQP",
            dependencies: [
                "CRabbitMQ",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/AMQP"
        ),
        // Message contracts: the commands, replies and events every service agrees on.
        .target(
            name: "Messaging",
            dependencies: [],
            path: "Shared/Messaging"
        ),
        // PostgreSQL plumbing: migrations, transactional outbox, inbox, outbox relay.
        .target(
            name: "Persistence",
            dependencies: [
                "AMQP", "Messaging",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/Persistence"
        ),
        // The saga engine: definitions and a pure state machine.
        .target(
            name: "SagaEngine",
            dependencies: ["Messaging"],
            path: "Shared/SagaEngine"
        ),
        // Service plumbing: configuration, health and metrics endpoints, consumers.
        .target(
            name: "ServiceKit",
            dependencies: [
                "AMQP", "Messaging", "Persistence",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Shared/ServiceKit"
        ),
        .executableTarget(
            name: "Order",
            dependencies: ["ServiceKit"],
            path: "Services/Order",
            resources: []
        ),
        .executableTarget(name: "Inventory", dependencies: ["ServiceKit"], path: "Services/Inventory"),
        .executableTarget(name: "Payment", dependencies: ["ServiceKit"], path: "Services/Payment"),
        .executableTarget(
            name: "Orchestrator",
            dependencies: ["ServiceKit", "SagaEngine"],
            path: "Services/Orchestrator"
        ),
        .executableTarget(
            name: "Notifier",
            dependencies: [
                "ServiceKit",
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
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
            dependencies: ["ServiceKit", "AMQP", "Messaging", "Notifier"],
            path: "Tests/ServiceKitTests"
        ),
        // Against the real RabbitMQ and PostgreSQL that scripts/test starts; disabled without them.
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["AMQP", "Messaging", "Persistence", "ServiceKit", "Inventory", "Payment", "Order"],
            path: "Tests/IntegrationTests"
        ),
    ]
)
