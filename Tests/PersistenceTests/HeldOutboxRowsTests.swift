import Persistence
import Testing

/// What the outbox relay holds back from its poller, through every way a row can go.
struct HeldOutboxRowsTests {
    /// Rows with these ids, each at a place of its own.
    func rows(_ ids: Int64...) -> [OutboxRowID] { ids.map { OutboxRowID(id: $0, tid: "(\($0),1)") } }

    @Test func aRowIsHeldFromItsPublishUntilItsDeletionCommits() {
        var held = HeldOutboxRows()
        held.publishing(rows(1, 2))
        #expect(Set(held.all) == [1, 2])
        held.published(rows(1, 2), confirmed: true)
        #expect(Set(held.all) == [1, 2])
        let taken = held.takeConfirmed()
        #expect(taken == rows(1, 2))
        #expect(Set(held.all) == [1, 2], "being deleted: still not the poller's")
        held.deleted(taken, committed: true)
        #expect(held.all.isEmpty)
    }

    @Test func aFailedPublishLetsTheRowGoToThePoller() {
        var held = HeldOutboxRows()
        held.publishing(rows(7))
        held.published(rows(7), confirmed: false)
        #expect(held.all.isEmpty)
        #expect(held.takeConfirmed().isEmpty, "nothing to delete: the row was never sent")
    }

    @Test func aDeletionThatDidNotCommitIsTakenAgainNextTime() {
        var held = HeldOutboxRows()
        held.publishing(rows(3, 4))
        held.published(rows(3, 4), confirmed: true)
        let first = held.takeConfirmed()
        held.deleted(first, committed: false)
        #expect(Set(held.all) == [3, 4])
        #expect(Set(held.takeConfirmed()) == Set(rows(3, 4)))
    }

    @Test func eachConfirmedIdIsTakenOnce() {
        var held = HeldOutboxRows()
        held.publishing(rows(1))
        held.published(rows(1), confirmed: true)
        #expect(held.takeConfirmed() == rows(1))
        #expect(held.takeConfirmed().isEmpty, "a second consumer's transaction gets nothing to delete")
        held.publishing(rows(2))
        held.published(rows(2), confirmed: true)
        #expect(held.takeConfirmed() == rows(2))
    }
}
