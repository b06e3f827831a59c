import Hummingbird
import Logging
import ServiceKit

@main
struct OrderApp {
    static func main() async throws {
        EventLoopExecutor.install()
        let configuration = ServiceMain.configured {
            try ServiceConfiguration(name: "order", defaultPort: 8080, defaultDatabase: "orders")
        }
        Observability.bootstrap(level: configuration.logLevel)
        let app = ServiceMain.configured { try buildApplication(configuration) }
        try await app.runService()
    }
}
