import Hummingbird
import Logging
import ServiceKit

@main
struct InventoryApp {
    static func main() async throws {
        EventLoopExecutor.install()
        let configuration = try ServiceConfiguration(name: "inventory", defaultPort: 8082, defaultDatabase: "inventory")
        Observability.bootstrap(level: configuration.logLevel)
        let app = try buildApplication(configuration)
        try await app.runService()
    }
}
