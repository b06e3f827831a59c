import Hummingbird
import Logging
import ServiceKit

@main
struct InventoryApp {
    static func main() async throws {
        EventLoopExecutor.install()
        let configuration = ServiceMain.configured {
            try ServiceConfiguration(name: "inventory", defaultPort: 8082, defaultDatabase: "inventory")
        }
        Observability.bootstrap(level: configuration.logLevel)
        let app = ServiceMain.configured { try buildApplication(configuration) }
        try await app.runService()
    }
}
