/// An error from the AMQP layer: what failed, and the broker's or library's words for it.
public struct AMQPError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String {
            case invalidConfiguration, connectionFailed, connectionClosed
            case declareFailed, publishFailed, publishNacked, confirmTimeout, consumeFailed, shutdown
        }
        fileprivate let base: Base
        public var description: String { base.rawValue }

        /// The configuration (URL, port) cannot be used.
        public static let invalidConfiguration = Code(base: .invalidConfiguration)
        /// The TCP connection or the login failed.
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The broker or the network closed the connection.
        public static let connectionClosed = Code(base: .connectionClosed)
        /// Declaring an exchange, a queue or a binding failed.
        public static let declareFailed = Code(base: .declareFailed)
        /// Sending a message failed before the broker could confirm it.
        public static let publishFailed = Code(base: .publishFailed)
        /// The broker refused a message (basic.nack): it was not stored.
        public static let publishNacked = Code(base: .publishNacked)
        /// The broker did not confirm in time; the message may or may not be stored.
        public static let confirmTimeout = Code(base: .confirmTimeout)
        /// Starting a consumer failed.
        public static let consumeFailed = Code(base: .consumeFailed)
        /// The client is shutting down.
        public static let shutdown = Code(base: .shutdown)
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "AMQPError.\(code): \(message)" }
}
