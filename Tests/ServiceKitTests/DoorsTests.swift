import AMQP
import Foundation
import Hummingbird
import Messaging
import Testing

@testable import Notifier
@testable import ServiceKit

/// The secrets a service accepts, and how it refuses the others.
@Suite struct SecretPolicyTests {
    @Test(arguments: [
        "change-me-token-secret", "change-me-operator-token", "change-me-orders", "CHANGE-ME-anything-at-all-long",
        "guest", "password", "secret", String(repeating: "a", count: 80), String(repeating: "ab12", count: 20),
    ])
    func placeholdersAndTypedValuesAreRefused(_ value: String) {
        #expect(SecretPolicy.problem("PETS_TOKEN_SECRET", value, minimumBytes: 32) != nil)
    }

    @Test func aShortSecretIsRefusedAndTheMessageNamesTheVariableNotTheValue() throws {
        let value = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"  // 16 random bytes as hex
        let problem = try #require(SecretPolicy.problem("PETS_TOKEN_SECRET", value, minimumBytes: 32))
        #expect(problem.contains("PETS_TOKEN_SECRET"))
        #expect(problem.contains("too short"))
        #expect(!problem.contains(value))
    }

    @Test func generatedSecretsAreAccepted() {
        let hex = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        #expect(SecretPolicy.problem("PETS_TOKEN_SECRET", hex, minimumBytes: 32) == nil)
        let base64 = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        #expect(SecretPolicy.problem("PETS_OPERATOR_TOKEN", base64, minimumBytes: 32) == nil)
        #expect(SecretPolicy.problem("PETS_DB_PASSWORD", String(hex.prefix(32)), minimumBytes: 16) == nil)
    }

    @Test func aMissingSecretIsNamed() {
        let environment = ServiceEnvironment([:])
        #expect(throws: ConfigurationError.self) {
            try environment.secret("PETS_OPERATOR_TOKEN", minimumBytes: 32, "operators")
        }
        do {
            _ = try environment.secret("PETS_OPERATOR_TOKEN", minimumBytes: 32, "operators")
        } catch {
            #expect("\(error)".contains("PETS_OPERATOR_TOKEN is not set"))
        }
    }
}

/// The broker URL's password appears in no error.
@Suite struct AMQPURLTests {
    let password = "5f0e3c1b9a8d7e6f5a4b3c2d1e0f9a8b"

    func configurationError(_ url: String) -> String? {
        do {
            _ = try ServiceConfiguration.amqp(ServiceEnvironment(["PETS_AMQP_URL": url]), connectionName: "test")
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func aMalformedURLIsNamedWithItsPasswordMasked() throws {
        let message = try #require(configurationError("amqp://pets-order:\(password)@127.0.0.1:notaport/"))
        #expect(message.contains("PETS_AMQP_URL"))
        #expect(message.contains("pets-order:***@"))
        #expect(!message.contains(password))
        let noAt = try #require(configurationError("amqp://pets-order:\(password)"))
        #expect(!noAt.contains(password))
    }

    @Test func aPlaceholderBrokerPasswordIsRefused() throws {
        let message = try #require(configurationError("amqp://pets-order:change-me-amqp-order@rabbitmq:5672/"))
        #expect(message.contains("PETS_AMQP_URL"))
        #expect(configurationError("amqp://pets-order:\(password)@rabbitmq:5672/") == nil)
    }

    @Test func maskingKeepsWhatIsNotSecret() {
        #expect(ServiceConfiguration.masked("amqp://u:p@h:1/") == "amqp://u:***@h:1/")
        #expect(ServiceConfiguration.masked("amqp://rabbitmq:5672/") == "amqp://rabbitmq:5672/")
    }
}

@Suite struct ShopOriginTests {
    @Test func originsAreNormalised() {
        #expect(
            ShopOriginCORSMiddleware<BasicRequestContext>.origin("http://LocalHost:8080/monitor/")
                == "http://localhost:8080")
        #expect(ShopOriginCORSMiddleware<BasicRequestContext>.origin("https://shop.example") == "https://shop.example")
        #expect(ShopOriginCORSMiddleware<BasicRequestContext>.origin("null") == nil)
    }
}

@Suite struct SessionCapTests {
    @Test func sessionsAreCappedPerOrderAndInAll() {
        var counts = SessionCounts()
        #expect(counts.admit("a", perOrder: 2, total: 3) == nil)
        #expect(counts.admit("a", perOrder: 2, total: 3) == nil)
        #expect(counts.admit("a", perOrder: 2, total: 3) == .orderFull(2))
        #expect(counts.admit("b", perOrder: 2, total: 3) == nil)
        #expect(counts.admit("c", perOrder: 2, total: 3) == .serverFull(3))
        counts.release("a")
        #expect(counts.admit("c", perOrder: 2, total: 3) == nil)
        counts.release("a")
        counts.release("b")
        counts.release("c")
        #expect(counts.total == 0 && counts.perOrder.isEmpty)
    }

    @Test func refusalsCloseWithCodesThatSayWhy() {
        #expect(SessionLimits.Refusal.orderFull(16).closeCode == .policyViolation)
        #expect(SessionLimits.Refusal.serverFull(10).closeCode == .unknown(1013))
    }
}

/// The broker's setup declares exactly the topology the services rely on.
@Suite struct BrokerDefinitionsTests {
    struct Definitions: Decodable {
        struct Exchange: Decodable {
            var name: String
            var type: String
            var durable: Bool
        }
        struct Queue: Decodable {
            var name: String
            var durable: Bool
            var arguments: [String: Argument]
        }
        struct Binding: Decodable {
            var source: String
            var destination: String
            var routing_key: String
        }
        enum Argument: Decodable, Equatable {
            case string(String), int(Int)
            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let int = try? container.decode(Int.self) {
                    self = .int(int)
                } else {
                    self = .string(try container.decode(String.self))
                }
            }
        }
        var exchanges: [Exchange]
        var queues: [Queue]
        var bindings: [Binding]
    }

    func definitions() throws -> Definitions {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [root.appendingPathComponent("docker/rabbitmq-definitions.sh").path]
        var environment = ["PATH": "/usr/bin:/bin"]
        for service in ["ORDER", "INVENTORY", "PAYMENT", "ORCHESTRATOR", "NOTIFIER"] {
            environment["PETS_AMQP_PW_\(service)"] = "test\(service.lowercased())1234"
        }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return try JSONDecoder().decode(Definitions.self, from: data)
    }

    @Test func theDefinitionsDeclareExactlyPetsTopology() throws {
        let declared = try definitions()
        let topology = PetsTopology.durable
        #expect(
            Set(declared.exchanges.map { "\($0.name) \($0.type) \($0.durable)" })
                == Set(topology.exchanges.map { "\($0.name) \($0.kind.rawValue) true" }))
        var expected: [String: [String: Definitions.Argument]] = [:]
        for queue in topology.queues {
            var arguments: [String: Definitions.Argument] = [:]
            if case .quorum(let limit) = queue.kind {
                arguments["x-queue-type"] = .string("quorum")
                arguments["x-delivery-limit"] = .int(limit)
            }
            if let dlx = queue.deadLetterExchange { arguments["x-dead-letter-exchange"] = .string(dlx) }
            expected[queue.name] = arguments
        }
        #expect(Dictionary(uniqueKeysWithValues: declared.queues.map { ($0.name, $0.arguments) }) == expected)
        #expect(declared.queues.allSatisfy { $0.durable })
        #expect(
            Set(declared.bindings.map { "\($0.source)>\($0.destination):\($0.routing_key)" })
                == Set(topology.bindings.map { "\($0.exchange)>\($0.queue):\($0.routingKey)" }))
    }

    @Test func servicesDeclareNothingDurableThemselves() {
        #expect(PetsTopology.declaredByServices == AMQPTopology())
        #expect(PetsTopology.notifierQueue.queues.allSatisfy { $0.kind == .exclusive })
        #expect(PetsTopology.notifierQueue.exchanges.isEmpty)
    }
}
