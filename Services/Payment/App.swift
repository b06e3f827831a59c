import Hummingbird
import Logging
import ServiceKit

@main
struct PaymentApp {
    static func main() async throws {
        EventLoopExecutor.install()
        let configuration = ServiceMain.configured {
            try ServiceConfiguration(name: "payment", defaultPort: 8083, defaultDatabase: "payments")
        }
        Observability.bootstrap(level: configuration.logLevel)
        let app = ServiceMain.configured { try buildApplication(configuration) }
        try await app.runService()
    }
}
