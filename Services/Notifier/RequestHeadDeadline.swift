import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// Closes a connection whose first request head has not fully arrived within `deadline` of connecting.
/// Hummingbird's idle timeout starts only once a plain HTTP request has been read; before the WebSocket upgrade
/// decision nothing would ever close a socket that connects and sends nothing (or a few bytes at a time), so a
/// flood of them would hold file descriptors for ever. After the head the WebSocket's own pings (or the HTTP idle
/// timeout) take over.
struct RequestHeadDeadlineChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let deadline: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                RequestHeadDeadlineHandler(deadline: deadline), position: .first)
        }.flatMap { base.setup(channel: channel, logger: logger) }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// Watches the raw bytes for the blank line that ends an HTTP/1 request head, then steps aside.
final class RequestHeadDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let deadline: TimeAmount
    private var timer: Scheduled<Void>?
    /// The last bytes seen, so a `\r\n\r\n` split across reads is still found.
    private var tail: [UInt8] = []
    private var done = false

    init(deadline: TimeAmount) {
        self.deadline = deadline
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard timer == nil, !done else { return }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: deadline) {
            loopBound.value.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else {
            context.fireChannelRead(data)
            return
        }
        var window = tail
        window.append(contentsOf: unwrapInboundIn(data).readableBytesView)
        context.fireChannelRead(data)
        if containsHeadEnd(window) {
            done = true
            timer?.cancel()
            timer = nil
            tail = []
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } else {
            tail = Array(window.suffix(3))
        }
    }

    private func containsHeadEnd(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 4 else { return false }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return true
        }
        return false
    }
}
