import Testing

@testable import AMQP

/// The I/O loop's bookkeeping, with no broker: which callers a confirm resolves, and what goes on the wire when
/// handlers settle their deliveries.
struct ConnectionStateTests {
    @Test func aJobIsConfirmedWhenEveryOneOfItsMessagesIs() {
        var state = ConnectionState()
        state.published(job: 1, count: 3, deadline: 100)
        #expect(state.confirmed(tag: 1, multiple: false, ack: true).isEmpty)
        #expect(state.confirmed(tag: 2, multiple: false, ack: true).isEmpty)
        let finished = state.confirmed(tag: 3, multiple: false, ack: true)
        #expect(finished.map(\.job) == [1])
        #expect(finished.map(\.outcome) == [.confirmed])
        #expect(state.pendingJobs == 0)
    }

    @Test func aMultipleConfirmResolvesEveryJobUpToItsTagAndNoMore() {
        var state = ConnectionState()
        state.published(job: 1, count: 2, deadline: 100)  // tags 1-2
        state.published(job: 2, count: 1, deadline: 100)  // tag 3
        state.published(job: 3, count: 2, deadline: 100)  // tags 4-5
        let finished = state.confirmed(tag: 4, multiple: true, ack: true)
        #expect(finished.map(\.job) == [1, 2])
        #expect(state.pendingJobs == 1)
        #expect(state.confirmed(tag: 5, multiple: false, ack: true).map(\.job) == [3])
    }

    @Test func oneNackedMessageFailsItsWholeJobButNotTheOthers() {
        var state = ConnectionState()
        state.published(job: 1, count: 2, deadline: 100)
        state.published(job: 2, count: 1, deadline: 100)
        #expect(state.confirmed(tag: 1, multiple: false, ack: false).isEmpty)
        let finished = state.confirmed(tag: 3, multiple: true, ack: true)
        #expect(finished.map(\.job) == [1, 2])
        #expect(finished.map(\.outcome) == [.nacked, .confirmed])
    }

    @Test func jobsPastTheirDeadlineTimeOutAndTheirLateConfirmsAreIgnored() {
        var state = ConnectionState()
        state.published(job: 1, count: 1, deadline: 10)
        state.published(job: 2, count: 1, deadline: 20)
        #expect(state.nextDeadline == 10)
        let expired = state.expire(now: 15)
        #expect(expired.map(\.job) == [1])
        #expect(expired.map(\.outcome) == [.timedOut])
        #expect(state.confirmed(tag: 1, multiple: false, ack: true).isEmpty)
        #expect(state.confirmed(tag: 2, multiple: false, ack: true).map(\.job) == [2])
    }

    @Test func aLostConnectionMakesEveryWaitingJobUnknownAndTagsStartAgain() {
        var state = ConnectionState()
        state.published(job: 1, count: 2, deadline: 100)
        state.published(job: 2, count: 1, deadline: 100)
        _ = state.confirmed(tag: 3, multiple: false, ack: true)
        let lost = state.connectionLost()
        #expect(lost.map(\.job) == [1])
        #expect(lost.map(\.outcome) == [.unknown])
        #expect(state.nextPublishTag == 1)
        state.published(job: 3, count: 1, deadline: 100)
        #expect(state.confirmed(tag: 1, multiple: false, ack: true).map(\.job) == [3])
    }

    @Test func consecutiveAcksBecomeOneMultipleAck() {
        var state = ConnectionState()
        for tag in UInt64(1)...4 { state.delivered(channel: 2, tag: tag) }
        let actions = state.settle([(2, 1, .ack), (2, 2, .ack), (2, 3, .ack)])
        #expect(actions == [.init(channel: 2, tag: 3, settlement: .ack, multiple: true)])
        // Tag 4 is still unsettled; settling it alone is a single ack.
        #expect(state.settle([(2, 4, .ack)]) == [.init(channel: 2, tag: 4, settlement: .ack, multiple: false)])
    }

    @Test func aMultipleAckNeverCoversADeliveryStillBeingHandled() {
        var state = ConnectionState()
        for tag in UInt64(1)...5 { state.delivered(channel: 2, tag: tag) }
        // Tag 2 is still being handled: 1 goes alone, 3 and 5 one by one.
        let actions = state.settle([(2, 1, .ack), (2, 3, .ack), (2, 5, .ack)])
        #expect(
            actions == [
                .init(channel: 2, tag: 1, settlement: .ack, multiple: false),
                .init(channel: 2, tag: 3, settlement: .ack, multiple: false),
                .init(channel: 2, tag: 5, settlement: .ack, multiple: false),
            ])
        // Now 2 and 4 are done: everything left is covered by one multiple ack.
        #expect(
            state.settle([(2, 4, .ack), (2, 2, .ack)]) == [.init(channel: 2, tag: 4, settlement: .ack, multiple: true)])
    }

    @Test func rejectsGoFirstAndSingly_soALaterMultipleAckDoesNotSwallowThem() {
        var state = ConnectionState()
        for tag in UInt64(1)...3 { state.delivered(channel: 2, tag: tag) }
        let actions = state.settle([(2, 1, .ack), (2, 2, .reject), (2, 3, .ack)])
        #expect(
            actions == [
                .init(channel: 2, tag: 2, settlement: .reject, multiple: false),
                .init(channel: 2, tag: 3, settlement: .ack, multiple: true),
            ])
    }

    @Test func channelsAreSettledSeparately() {
        var state = ConnectionState()
        state.delivered(channel: 2, tag: 1)
        state.delivered(channel: 3, tag: 1)
        state.delivered(channel: 3, tag: 2)
        let actions = state.settle([(3, 2, .ack), (2, 1, .ack)])
        #expect(
            actions == [
                .init(channel: 2, tag: 1, settlement: .ack, multiple: false),
                .init(channel: 3, tag: 2, settlement: .ack, multiple: false),
            ])
    }

    @Test func settlementsOfUnknownOrAlreadySettledTagsAreDropped() {
        var state = ConnectionState()
        state.delivered(channel: 2, tag: 1)
        #expect(state.settle([(2, 1, .ack)]).count == 1)
        #expect(state.settle([(2, 1, .ack), (2, 9, .requeue), (4, 1, .ack)]).isEmpty)
        state.delivered(channel: 2, tag: 2)
        _ = state.connectionLost()
        #expect(state.settle([(2, 2, .ack)]).isEmpty)
    }
}
