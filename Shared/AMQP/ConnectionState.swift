/// The bookkeeping of one connection's I/O loop, as a value: which published messages wait for a confirm, which
/// deliveries wait for a settlement. Its methods say what happened or what to send; the loop does the I/O. No C, no
/// threads, so every path is a unit test.
struct ConnectionState {
    /// What became of a publish job (all the messages one caller handed over).
    enum PublishOutcome: Equatable {
        /// The broker stored every message.
        case confirmed
        /// The broker refused at least one message.
        case nacked
        /// No confirm came in time; the broker may or may not have the messages.
        case timedOut
        /// The connection died before every confirm came; the broker may or may not have the messages.
        case unknown
    }

    /// A settlement to send on a consuming channel.
    struct SettleAction: Equatable {
        var channel: UInt16
        var tag: UInt64
        var settlement: DeliverySettlement
        /// Settles every unsettled tag up to `tag` on the channel (only for acks).
        var multiple: Bool
    }

    private struct Job {
        var remaining: Int
        var nacked: Bool
        var deadline: Double
    }

    /// The tag the broker gives the next message published on this connection (confirms number from 1).
    private(set) var nextPublishTag: UInt64 = 1
    /// Unconfirmed tags in ascending order, with the job each belongs to.
    private var unconfirmed: [(tag: UInt64, job: Int)] = []
    private var jobs: [Int: Job] = [:]
    /// Delivered and not yet settled, per consuming channel.
    private var unsettled: [UInt16: Set<UInt64>] = [:]

    /// Jobs that still wait for a confirm.
    var pendingJobs: Int { jobs.count }

    /// The earliest confirm deadline, for the loop's poll timeout.
    var nextDeadline: Double? { jobs.values.map(\.deadline).min() }

    /// Records that job `id` sent `count` messages; they take the next `count` tags.
    mutating func published(job id: Int, count: Int, deadline: Double) {
        guard count > 0 else { return }
        for offset in 0..<UInt64(count) { unconfirmed.append((nextPublishTag + offset, id)) }
        nextPublishTag += UInt64(count)
        jobs[id] = Job(remaining: count, nacked: false, deadline: deadline)
    }

    /// A basic.ack or basic.nack from the broker; returns the jobs it finished.
    mutating func confirmed(tag: UInt64, multiple: Bool, ack: Bool) -> [(job: Int, outcome: PublishOutcome)] {
        var settled: [Int] = []
        if multiple {
            var count = 0
            while count < unconfirmed.count && unconfirmed[count].tag <= tag { count += 1 }
            settled = unconfirmed.prefix(count).map(\.job)
            unconfirmed.removeFirst(count)
        } else if let index = firstIndex(ofTag: tag) {
            settled = [unconfirmed[index].job]
            unconfirmed.remove(at: index)
        }
        var finished: [(job: Int, outcome: PublishOutcome)] = []
        for id in settled {
            guard var job = jobs[id] else { continue }
            job.remaining -= 1
            job.nacked = job.nacked || !ack
            if job.remaining == 0 {
                jobs[id] = nil
                finished.append((id, job.nacked ? .nacked : .confirmed))
            } else {
                jobs[id] = job
            }
        }
        return finished
    }

    /// Jobs whose deadline has passed: they fail as `timedOut`, and their late confirms are ignored.
    mutating func expire(now: Double) -> [(job: Int, outcome: PublishOutcome)] {
        let late = jobs.filter { $0.value.deadline <= now }.map(\.key).sorted()
        guard !late.isEmpty else { return [] }
        let lateSet = Set(late)
        for id in late { jobs[id] = nil }
        unconfirmed.removeAll { lateSet.contains($0.job) }
        return late.map { ($0, .timedOut) }
    }

    /// The connection is gone: every waiting job's fate is unknown, every delivery will come again, and a new
    /// connection numbers its tags from 1.
    mutating func connectionLost() -> [(job: Int, outcome: PublishOutcome)] {
        let lost = jobs.keys.sorted().map { (job: $0, outcome: PublishOutcome.unknown) }
        self = ConnectionState()
        return lost
    }

    /// A delivery arrived on `channel`.
    mutating func delivered(channel: UInt16, tag: UInt64) {
        unsettled[channel, default: []].insert(tag)
    }

    /// Forgets a consuming channel (closed, or its consumer stopped); the broker requeues what it held.
    mutating func closed(channel: UInt16) {
        unsettled[channel] = nil
    }

    /// Turns settlements into what to send: acks that cover every unsettled tag up to the highest of them become
    /// one `multiple` ack; the rest go one by one. Unknown tags (settled already, or from another connection) are
    /// dropped, so a settlement is never sent twice.
    mutating func settle(_ requests: [(channel: UInt16, tag: UInt64, settlement: DeliverySettlement)])
        -> [SettleAction]
    {
        var actions: [SettleAction] = []
        var acks: [UInt16: [UInt64]] = [:]
        for request in requests {
            guard unsettled[request.channel]?.contains(request.tag) == true else { continue }
            if request.settlement == .ack {
                acks[request.channel, default: []].append(request.tag)
            } else {
                unsettled[request.channel]?.remove(request.tag)
                actions.append(
                    SettleAction(
                        channel: request.channel, tag: request.tag, settlement: request.settlement,
                        multiple: false))
            }
        }
        for channel in acks.keys.sorted() {
            let tags = Set(acks[channel]!).sorted()
            let remaining = unsettled[channel]!.subtracting(tags)
            let lowestKept = remaining.min() ?? .max
            let covered = tags.filter { $0 < lowestKept }
            if covered.count > 1, let highest = covered.last {
                actions.append(SettleAction(channel: channel, tag: highest, settlement: .ack, multiple: true))
            } else if let only = covered.first {
                actions.append(SettleAction(channel: channel, tag: only, settlement: .ack, multiple: false))
            }
            for tag in tags where tag >= lowestKept {
                actions.append(SettleAction(channel: channel, tag: tag, settlement: .ack, multiple: false))
            }
            unsettled[channel] = remaining
        }
        return actions
    }

    private func firstIndex(ofTag tag: UInt64) -> Int? {
        var low = 0
        var high = unconfirmed.count
        while low < high {
            let middle = (low + high) / 2
            if unconfirmed[middle].tag < tag { low = middle + 1 } else { high = middle }
        }
        return low < unconfirmed.count && unconfirmed[low].tag == tag ? low : nil
    }
}
