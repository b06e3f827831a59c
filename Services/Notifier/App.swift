import Hummingbird
import Logging
import ServiceKit

@main
struct NotifierApp {
    static func main() async throws {
        EventLoopExecutor.install()
        let configuration = try ServiceConfiguration(name: "notifier", defaultPort: 8081, defaultDatabase: nil)
        Observability.bootstrap(level: configuration.logLevel)
        let app = try buildApplication(configuration)
        try await app.runService()
    }
}
