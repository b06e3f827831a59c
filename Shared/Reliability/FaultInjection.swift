import Foundation

/// Faults switched on from outside a running process, for the reliability tests: they let a test kill a service at
/// an exact point (after a commit, before the ack), delay a participant past its deadline, or make a compensation
/// fail until an operator steps in.
///
/// Rules come from `PETS_FAULTS` (fixed for the process) and from the file named by `PETS_FAULTS_FILE` (read
/// again at each check, so a test can switch a fault on and off while the process runs). One rule per line or
/// comma-separated: `crash-after-commit reserveInventory`, `crash-after-publish processPayment`,
/// `fail releaseInventory`, `delay processPayment 4`, `reject startPlaceOrder`. With neither variable set, every
/// check is a dictionary lookup on an empty set.
public enum FaultInjection {
    public enum Kind: String, Sendable {
        /// Kill the process (SIGKILL) after the transaction that applied a message of this type committed, before
        /// its ack.
        case crashAfterCommit = "crash-after-commit"
        /// Kill the process after the outbox relay published a batch holding a message of this type, before the
        /// rows are deleted.
        case crashAfterPublish = "crash-after-publish"
        /// A participant answers this command with a failure instead of handling it.
        case fail
        /// Wait this many seconds before handling a message of this type.
        case delay
        /// Dead-letter a message of this type as if it were malformed (checked by the Orchestrator's
        /// `orchestrator.commands` handler: a start that never becomes a saga).
        case reject
    }

    private static let fixed: String = ProcessInfo.processInfo.environment["PETS_FAULTS"] ?? ""
    private static let file: String? = ProcessInfo.processInfo.environment["PETS_FAULTS_FILE"]
    public static let isEnabled = !fixed.isEmpty || file != nil

    /// The argument of the rule `kind type [argument]` if it is active ("" when it has none), nil otherwise.
    public static func rule(_ kind: Kind, _ type: String) -> String? {
        guard isEnabled else { return nil }
        var text = fixed
        if let file, let contents = try? String(contentsOfFile: file, encoding: .utf8) { text += "\n" + contents }
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "," }) {
            let words = line.split(separator: " ").map(String.init)
            guard words.count >= 2, words[0] == kind.rawValue, words[1] == type else { continue }
            return words.count > 2 ? words[2] : ""
        }
        return nil
    }

    public static func isActive(_ kind: Kind, _ type: String) -> Bool {
        rule(kind, type) != nil
    }

    /// Dies at once, as a SIGKILL from outside would have it: no cleanup, no ack, no graceful shutdown.
    public static func crash(_ reason: String) -> Never {
        FileHandle.standardError.write(Data("fault injection: \(reason); killing the process\n".utf8))
        kill(getpid(), SIGKILL)
        fatalError("unreachable: SIGKILL did not stop the process")
    }
}
