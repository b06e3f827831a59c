import Hummingbird
import Logging
import ServiceKit

@main
struct OrderApp {
    static func main() async throws {
        EventLoopExecutor.install()
        let configuration = try ServiceConfiguration(name: "order", defaultPort: 8080, defaultDatabase: "orders")
        Observability.bootstrap(level: configuration.logLevel)
        let app = try buildApplication(configuration)
        try await app.runService()
    }
}
