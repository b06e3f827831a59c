import Hummingbird
import Logging
import ServiceKit

@main
struct OrchestratorApp {
    static func main() async throws {
        EventLoopExecutor.install()
        let configuration = try ServiceConfiguration(
            name: "orchestrator", defaultPort: 8084, defaultDatabase: "orchestrator")
        Observability.bootstrap(level: configuration.logLevel)
        let app = try buildApplication(configuration)
        try await app.runService()
    }
}
