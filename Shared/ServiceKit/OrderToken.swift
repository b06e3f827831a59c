@preconcurrency import Crypto
import Foundation
import Messaging

/// The token in an order's WebSocket URL: an HMAC of the order id under a secret the Order service and the
/// Notifier share, so the Notifier verifies it without a database and only the order's placer has it.
public struct OrderToken: @unchecked Sendable {
    // @unchecked Sendable: SymmetricKey is immutable after init; Crypto does not mark it Sendable.
    private let key: SymmetricKey

    public init(secret: String) {
        key = SymmetricKey(data: Data(secret.utf8))
    }

    public func token(for orderId: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(orderId.lowercased().utf8), using: key)
        return Hex.encode(Data(mac))
    }

    public func verify(_ token: String, for orderId: String) -> Bool {
        guard token.count == 64, let bytes = Data(hexString: token) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(
            bytes, authenticating: Data(orderId.lowercased().utf8), using: key)
    }
}

extension Data {
    fileprivate init?(hexString: String) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hexString.count / 2)
        var iterator = hexString.makeIterator()
        while let high = iterator.next() {
            guard let low = iterator.next(), let value = UInt8(String([high, low]), radix: 16) else { return nil }
            bytes.append(value)
        }
        self.init(bytes)
    }
}
