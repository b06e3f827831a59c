import Hummingbird
import Logging
import ServiceKit

@main
struct PaymentApp {
    static func main() async throws {
        EventLoopExecutor.install()
        let configuration = try ServiceConfiguration(name: "payment", defaultPort: 8083, defaultDatabase: "payments")
        Observability.bootstrap(level: configuration.logLevel)
        let app = try buildApplication(configuration)
        try await app.runService()
    }
}
