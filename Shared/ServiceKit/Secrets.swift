/// What a secret from the environment must be before a service starts with it: present, not one of the
/// placeholders `.env.example` ships (or another well-known value), and long enough to guess no sooner than
/// `minimumBytes` random bytes would be. A refusal names the variable, never the value.
public enum SecretPolicy {
    /// Token secrets and bearer tokens: 32 random bytes (`openssl rand -hex 32`, as scripts/lib.sh makes them).
    public static let tokenBytes = 32
    /// Passwords of the database roles and broker users.
    public static let passwordBytes = 16

    /// Why `value` cannot serve as the secret `name`, or nil when it can.
    public static func problem(_ name: String, _ value: String?, minimumBytes: Int) -> String? {
        guard let value, !value.isEmpty else {
            return "\(name) is not set"
        }
        if isPlaceholder(value) {
            return "\(name) is a placeholder or a well-known value; generate one, e.g. `openssl rand -hex 32`"
        }
        let bytes = randomBytes(value)
        if bytes < minimumBytes {
            return
                "\(name) is too short: it carries about \(bytes) random bytes, at least \(minimumBytes) are needed "
                + "(e.g. `openssl rand -hex \(max(minimumBytes, 32))`)"
        }
        return nil
    }

    /// `.env.example`'s `change-me-...` values and their like, and values anyone would try first.
    static func isPlaceholder(_ value: String) -> Bool {
        let lowered = value.lowercased()
        let markers = [
            "change-me", "changeme", "change_me", "placeholder", "replace-me", "replaceme", "example", "xxxx",
        ]
        if markers.contains(where: lowered.contains) { return true }
        let wellKnown: Set<String> = [
            "guest", "password", "passw0rd", "secret", "admin", "root", "pets", "test", "token", "default", "rabbitmq",
            "postgres", "12345678", "123456789", "1234567890",
        ]
        if wellKnown.contains(lowered) { return true }
        // A long run of one character, or a handful of characters repeated, is typed, not generated.
        return Set(value).count < 8
    }

    /// How many random bytes a value can hold at most: hex carries 4 bits a character, base64 6, anything else 8.
    static func randomBytes(_ value: String) -> Int {
        let scalars = value.unicodeScalars
        if scalars.allSatisfy({ $0.properties.isASCIIHexDigit }) { return scalars.count / 2 }
        let base64 = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=".unicodeScalars)
        if scalars.allSatisfy(base64.contains) {
            return scalars.filter { $0 != "=" }.count * 3 / 4
        }
        return value.utf8.count
    }
}

extension ServiceEnvironment {
    /// The secret `name`, refused (with the variable's name and `why` it is needed) when missing, a placeholder or
    /// shorter than `minimumBytes` random bytes.
    public func secret(_ name: String, minimumBytes: Int, _ why: String) throws -> String {
        let value = optionalString(name)
        if let problem = SecretPolicy.problem(name, value, minimumBytes: minimumBytes) {
            throw ConfigurationError("\(problem) (\(why))")
        }
        return value!
    }
}
