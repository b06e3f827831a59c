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

/// Timestamps as the API shows them: ISO 8601 with milliseconds, UTC.
public enum Timestamp {
    public static func string(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
