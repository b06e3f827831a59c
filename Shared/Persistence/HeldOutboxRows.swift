/// The outbox rows a relay holds in memory, by what is happening to them: being published, published and confirmed
/// (waiting for someone to delete them), or being deleted. The poller leaves every held row alone, so a row is never
/// sent by two paths of one process at once; a row leaves the bookkeeping only when its deletion committed, or when
/// its publish failed (the poller then finds it in the table). A value, so each transition is a unit test.
public struct HeldOutboxRows: Sendable, Equatable {
    private(set) var sending: Set<OutboxRowID> = []
    private(set) var confirmed: [OutboxRowID] = []
    private(set) var deleting: Set<OutboxRowID> = []

    public init() {}

    /// Every id the poller must skip.
    public var all: [Int64] { (Array(sending) + confirmed + Array(deleting)).map(\.id) }

    /// The rows are handed to the publisher.
    public mutating func publishing(_ ids: [OutboxRowID]) {
        sending.formUnion(ids)
    }

    /// The publisher is done with the rows: confirmed ones wait for deletion; failed ones are let go (they are still
    /// in the table, and the poller sends them).
    public mutating func published(_ ids: [OutboxRowID], confirmed wasConfirmed: Bool) {
        sending.subtract(ids)
        if wasConfirmed { confirmed += ids }
    }

    /// Takes every confirmed row for one deletion (by a consumer's transaction or the relay's own).
    public mutating func takeConfirmed() -> [OutboxRowID] {
        let ids = confirmed
        confirmed = []
        deleting.formUnion(ids)
        return ids
    }

    /// The deletion of `ids` committed (they are gone) or not (they wait for the next deletion).
    public mutating func deleted(_ ids: [OutboxRowID], committed: Bool) {
        deleting.subtract(ids)
        if !committed { confirmed += ids }
    }
}
