import Hummingbird
import Logging
import ServiceKit

@main
struct NotifierApp {
    static func main() async throws {
        EventLoopExecutor.install()
        let configuration = ServiceMain.configured {
            try ServiceConfiguration(name: "notifier", defaultPort: 8081, defaultDatabase: nil)
        }
        Observability.bootstrap(level: configuration.logLevel)
        let app = ServiceMain.configured { try buildApplication(configuration) }
        try await app.runService()
    }
}
