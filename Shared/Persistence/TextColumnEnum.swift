import NIOCore
import PostgresNIO

/// A status as a `String`-backed enum: stored as its text in a `TEXT` column (whose CHECK lists the cases), shown as
/// the same text in JSON, and bound and decoded directly in queries (`SET status = \(OrderStatus.completed)`).
/// Without this PostgresNIO cannot choose between storing a `Codable` enum as JSON and as its raw value.
public protocol TextColumnEnum: RawRepresentable, Codable, PostgresNonThrowingEncodable, PostgresDecodable, Sendable
where RawValue == String {}

extension TextColumnEnum {
    public static var psqlType: PostgresDataType { String.psqlType }
    public static var psqlFormat: PostgresFormat { String.psqlFormat }

    public func encode<JSONEncoder: PostgresJSONEncoder>(
        into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>
    ) {
        rawValue.encode(into: &byteBuffer, context: context)
    }

    public init<JSONDecoder: PostgresJSONDecoder>(
        from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat,
        context: PostgresDecodingContext<JSONDecoder>
    ) throws {
        guard let value = Self(rawValue: try String(from: &buffer, type: type, format: format, context: context)) else {
            throw PostgresDecodingError.Code.failure
        }
        self = value
    }
}
