import Foundation
import HummingbirdWebSocket
import NIOWebSocket
import ServiceKit

/// Caps on WebSocket sessions: so many per order, so many in all. A flood of sockets on one token, or on many,
/// then costs the Notifier a bounded amount of memory and the Orchestrator a bounded number of history fetches.
/// A refused session is upgraded and closed at once with a close code that says why.
final class SessionLimits: @unchecked Sendable {
    // @unchecked Sendable: `counts` is only touched under `lock`.
    private let lock = NSLock()
    private var counts = SessionCounts()
    let perOrder: Int
    let total: Int

    init(perOrder: Int, total: Int) {
        self.perOrder = perOrder
        self.total = total
    }

    /// `PETS_WS_MAX_SESSIONS_PER_ORDER` (default 16) and `PETS_WS_MAX_SESSIONS` (default 10000).
    convenience init(environment: ServiceEnvironment) throws {
        let perOrder = try environment.int("PETS_WS_MAX_SESSIONS_PER_ORDER", default: 16)
        let total = try environment.int("PETS_WS_MAX_SESSIONS", default: 10_000)
        guard perOrder >= 1, total >= perOrder else {
            throw ConfigurationError(
                "PETS_WS_MAX_SESSIONS_PER_ORDER must be at least 1 and PETS_WS_MAX_SESSIONS at least as large; "
                    + "got \(perOrder) and \(total)")
        }
        self.init(perOrder: perOrder, total: total)
    }

    /// Admits a session of `orderId`, or says why not. An admitted session must be released.
    func admit(_ orderId: String) -> Refusal? {
        lock.withLock { counts.admit(orderId, perOrder: perOrder, total: total) }
    }

    func release(_ orderId: String) {
        lock.withLock { counts.release(orderId) }
    }

    enum Refusal: Equatable {
        case orderFull(Int)
        case serverFull(Int)

        /// 1008 (policy): this order has enough watchers. 1013 (try again later): the Notifier is full.
        var closeCode: WebSocketErrorCode {
            switch self {
            case .orderFull: return .policyViolation
            case .serverFull: return .unknown(1013)
            }
        }

        var reason: String {
            switch self {
            case .orderFull(let limit): return "too many sessions for this order (at most \(limit))"
            case .serverFull(let limit): return "the notifier is at its session limit (\(limit)); try again later"
            }
        }
    }
}

/// The counting itself, a value with no locking of its own.
struct SessionCounts {
    private(set) var perOrder: [String: Int] = [:]
    private(set) var total = 0

    mutating func admit(_ orderId: String, perOrder limit: Int, total totalLimit: Int) -> SessionLimits.Refusal? {
        if total >= totalLimit { return .serverFull(totalLimit) }
        if perOrder[orderId, default: 0] >= limit { return .orderFull(limit) }
        perOrder[orderId, default: 0] += 1
        total += 1
        return nil
    }

    mutating func release(_ orderId: String) {
        guard let count = perOrder[orderId] else { return }
        perOrder[orderId] = count > 1 ? count - 1 : nil
        total -= 1
    }
}
