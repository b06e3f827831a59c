import Hummingbird
import Logging
import ServiceKit

@main
struct OrchestratorApp {
    static func main() async throws {
        EventLoopExecutor.install()
        let configuration = ServiceMain.configured {
            try ServiceConfiguration(name: "orchestrator", defaultPort: 8084, defaultDatabase: "orchestrator")
        }
        Observability.bootstrap(level: configuration.logLevel)
        let app = ServiceMain.configured { try buildApplication(configuration) }
        try await app.runService()
    }
}
