import Foundation

/// JSON for message bodies, one configuration for every service.
public enum MessageCodec {
    // One coder of each kind for the process: their configuration never changes after this, and Foundation's
    // coders are safe to use from several threads at once. Making them anew per message showed in profiles.
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
    private static let decoder = JSONDecoder()

    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        Array(try encoder.encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try decoder.decode(type, from: Data(bytes))
    }
}

/// Timestamps as the API shows them: ISO 8601 with milliseconds, UTC (`2026-11-30T09:25:20.123Z`).
public enum Timestamp {
    public static func string(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// The same format in SQL, for a `timestamptz` column or expression read as text: a query selects
    /// `\(unescaped: Timestamp.sql("created_at"))`.
    public static func sql(_ column: String) -> String {
        #"to_char(\#(column) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
    }
}
