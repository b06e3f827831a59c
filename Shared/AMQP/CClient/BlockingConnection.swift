import CRabbitMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One rabbitmq-c connection: channel 1 publishes (with confirms), each further channel consumes one queue. Every
/// call blocks, so an instance lives on exactly one thread of its own (rabbitmq-c's rule: a connection is never
/// shared between threads) and is never touched from the Swift concurrency pool or an event loop. All C calls of the
/// AMQP module are in this folder.
final class BlockingConnection {
    private let state: amqp_connection_state_t
    static let publishChannel: amqp_channel_t = 1
    private var open = true
    /// Server-generated names of exclusive queues, by the label the topology gave them.
    private(set) var queueNames: [String: String] = [:]
    /// The heartbeat interval the broker and we agreed on, in seconds (0: none).
    let heartbeatSeconds: Int

    /// Connects, logs in and opens the publishing channel (with confirms when `confirms`). The TCP connect, the
    /// handshake and every RPC (declare, consume) have deadlines, so an unresponsive peer cannot hold the thread.
    init(endpoint: AMQPConfiguration.Endpoint, configuration: AMQPConfiguration, confirms: Bool) throws {
        guard let state = amqp_new_connection() else {
            throw AMQPError(.connectionFailed, "amqp_new_connection failed (out of memory)")
        }
        self.state = state
        let address = "\(endpoint.host):\(endpoint.port)"
        do {
            guard let socket = amqp_tcp_socket_new(state) else {
                throw AMQPError(.connectionFailed, "amqp_tcp_socket_new failed")
            }
            var timeout = timeval(configuration.connectTimeoutSeconds)
            let status = amqp_socket_open_noblock(socket, endpoint.host, Int32(endpoint.port), &timeout)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(.connectionFailed, "cannot reach \(address): \(Self.statusText(status))")
            }
            var handshake = timeval(configuration.connectTimeoutSeconds)
            _ = amqp_set_handshake_timeout(state, &handshake)
            var rpc = timeval(configuration.rpcTimeoutSeconds)
            _ = amqp_set_rpc_timeout(state, &rpc)
            let arena = CStringArena()
            let login = withFieldTable(
                [("connection_name", .string(configuration.connectionName)), ("product", .string("AWSomePets"))],
                arena: arena
            ) { properties in
                withUnsafePointer(to: properties) {
                    c_amqp_login_plain_with_properties(
                        state, configuration.vhost, 0, 131_072, Int32(configuration.heartbeatSeconds), $0,
                        configuration.user, configuration.password)
                }
            }
            try Self.check(login, .connectionFailed, "login to \(address)")
            heartbeatSeconds = Int(amqp_get_heartbeat(state))
            try openChannel(Self.publishChannel)
            if confirms {
                amqp_confirm_select(state, Self.publishChannel)
                try Self.check(amqp_get_rpc_reply(state), .connectionFailed, "confirm.select")
            }
        } catch {
            amqp_destroy_connection(state)
            open = false
            throw error
        }
    }

    deinit {
        if open { amqp_destroy_connection(state) }
    }

    /// Closes politely when the connection still works; tears the socket down otherwise.
    func close(polite: Bool) {
        guard open else { return }
        open = false
        if polite {
            _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        }
        amqp_destroy_connection(state)
    }

    func openChannel(_ channel: amqp_channel_t) throws {
        amqp_channel_open(state, channel)
        try Self.check(amqp_get_rpc_reply(state), .connectionFailed, "channel.open \(channel)")
    }

    /// Closes one consuming channel; the broker requeues what it delivered there and nobody settled.
    func closeChannel(_ channel: amqp_channel_t) throws {
        try Self.check(amqp_channel_close(state, channel, AMQP_REPLY_SUCCESS), .connectionClosed, "channel.close")
    }

    // MARK: Topology

    func declare(_ topology: AMQPTopology, quorumReplicas: Int) throws {
        let channel = Self.publishChannel
        let arena = CStringArena()
        for exchange in topology.exchanges {
            amqp_exchange_declare(
                state, channel, arena.bytes(exchange.name), arena.bytes(exchange.kind.rawValue),
                0, 1, 0, 0, c_amqp_empty_table())
            try Self.check(amqp_get_rpc_reply(state), .declareFailed, "exchange.declare \(exchange.name)")
        }
        for queue in topology.queues {
            var arguments: [(String, FieldValue)] = []
            if let dlx = queue.deadLetterExchange { arguments.append(("x-dead-letter-exchange", .string(dlx))) }
            let durable: amqp_boolean_t
            let exclusive: amqp_boolean_t
            let name: String
            switch queue.kind {
            case .quorum(let deliveryLimit):
                arguments.append(("x-queue-type", .string("quorum")))
                arguments.append(("x-delivery-limit", .int(Int64(deliveryLimit))))
                if quorumReplicas > 0 {
                    arguments.append(("x-quorum-initial-group-size", .int(Int64(quorumReplicas))))
                }
                (durable, exclusive, name) = (1, 0, queue.name)
            case .classic:
                (durable, exclusive, name) = (1, 0, queue.name)
            case .exclusive:
                (durable, exclusive, name) = (0, 1, "")
            }
            let declared = withFieldTable(arguments, arena: arena) { table in
                amqp_queue_declare(state, channel, arena.bytes(name), 0, durable, exclusive, exclusive, table)
            }
            try Self.check(amqp_get_rpc_reply(state), .declareFailed, "queue.declare \(queue.name)")
            if queue.kind == .exclusive, let declared {
                queueNames[queue.name] = Self.string(declared.pointee.queue)
            }
        }
        for binding in topology.bindings {
            amqp_queue_bind(
                state, channel, arena.bytes(queueName(binding.queue)), arena.bytes(binding.exchange),
                arena.bytes(binding.routingKey), c_amqp_empty_table())
            try Self.check(
                amqp_get_rpc_reply(state), .declareFailed, "queue.bind \(binding.queue) to \(binding.exchange)")
        }
    }

    /// The broker's name for a queue: the generated one for exclusive queues, the given one otherwise.
    func queueName(_ label: String) -> String { queueNames[label] ?? label }

    // MARK: Publishing

    /// Sends one message on the publishing channel; with confirms on, the broker numbers it with the next tag.
    func publish(_ outgoing: OutgoingMessage) throws {
        let arena = CStringArena()
        let message = outgoing.message
        var properties = amqp_basic_properties_t()
        var flags: UInt32 = 0
        properties.content_type = arena.bytes(message.contentType)
        flags |= UInt32(AMQP_BASIC_CONTENT_TYPE_FLAG)
        properties.delivery_mode = message.persistent ? 2 : 1
        flags |= UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG)
        properties.message_id = arena.bytes(message.messageID)
        flags |= UInt32(AMQP_BASIC_MESSAGE_ID_FLAG)
        properties.type = arena.bytes(message.type)
        flags |= UInt32(AMQP_BASIC_TYPE_FLAG)
        if let correlationID = message.correlationID {
            properties.correlation_id = arena.bytes(correlationID)
            flags |= UInt32(AMQP_BASIC_CORRELATION_ID_FLAG)
        }
        if let replyTo = message.replyTo {
            properties.reply_to = arena.bytes(replyTo)
            flags |= UInt32(AMQP_BASIC_REPLY_TO_FLAG)
        }
        let headerFields = message.headers.sorted { $0.key < $1.key }.map { ($0.key, FieldValue.string($0.value)) }
        let status: Int32 = withFieldTable(headerFields, arena: arena) { headers in
            if !headerFields.isEmpty {
                properties.headers = headers
                flags |= UInt32(AMQP_BASIC_HEADERS_FLAG)
            }
            properties._flags = flags
            return message.body.withUnsafeBytes { raw in
                let body = amqp_bytes_t(len: raw.count, bytes: UnsafeMutableRawPointer(mutating: raw.baseAddress))
                return amqp_basic_publish(
                    state, Self.publishChannel, arena.bytes(outgoing.exchange), arena.bytes(outgoing.routingKey),
                    0, 0, &properties, body)
            }
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(.publishFailed, "basic.publish to \(outgoing.routingKey): \(Self.statusText(status))")
        }
    }

    // MARK: Consuming

    func startConsuming(queue label: String, prefetch: UInt16, channel: amqp_channel_t) throws {
        amqp_basic_qos(state, channel, 0, prefetch, 0)
        try Self.check(amqp_get_rpc_reply(state), .consumeFailed, "basic.qos")
        let arena = CStringArena()
        amqp_basic_consume(
            state, channel, arena.bytes(queueName(label)), c_amqp_empty_bytes(), 0, 0, 0, c_amqp_empty_table())
        try Self.check(amqp_get_rpc_reply(state), .consumeFailed, "basic.consume \(label)")
    }

    /// The socket to poll for readability.
    var socketDescriptor: Int32 { amqp_get_sockfd(state) }

    /// True when a frame is already read from the socket, so polling the socket would wait for nothing.
    var hasBufferedData: Bool { amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 }

    struct Received {
        var message: AMQPMessage
        var deliveryTag: UInt64
        var redelivered: Bool
        var exchange: String
        var routingKey: String
        var deliveryCount: Int
    }

    /// What one frame from the broker meant.
    enum Event {
        case delivery(channel: amqp_channel_t, Received)
        case confirm(tag: UInt64, multiple: Bool, ack: Bool)
        /// Anything the loop need not act on (a frame of no interest).
        case other
    }

    /// The next frame, without waiting: nil when nothing is buffered or readable. rabbitmq-c sends heartbeats
    /// from inside this call when one is due and fails it with `AMQP_STATUS_HEARTBEAT_TIMEOUT` when the broker was
    /// silent for two intervals, so calling it regularly is what keeps a connection honest.
    func nextEvent() throws -> Event? {
        var frame = amqp_frame_t()
        var immediately = timeval(tv_sec: 0, tv_usec: 0)
        let status = amqp_simple_wait_frame_noblock(state, &frame, &immediately)
        if status == AMQP_STATUS_TIMEOUT.rawValue { return nil }
        guard status == AMQP_STATUS_OK.rawValue else {
            if status == AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue {
                throw AMQPError(
                    .connectionClosed, "no heartbeat from the broker for \(2 * heartbeatSeconds) s: connection dead")
            }
            throw AMQPError(.connectionClosed, "reading from the broker: \(Self.statusText(status))")
        }
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return .other }
        switch frame.payload.method.id {
        case MethodID.basicDeliver:
            let deliver = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            // Copied before reading the content frames, which may reuse the decoding pool.
            let tag = deliver.delivery_tag
            let redelivered = deliver.redelivered != 0
            let exchange = Self.string(deliver.exchange)
            let routingKey = Self.string(deliver.routing_key)
            var message = amqp_message_t()
            let reply = amqp_read_message(state, frame.channel, &message, 0)
            guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
                throw AMQPError(.connectionClosed, "reading a delivery: \(Self.replyText(reply))")
            }
            defer { amqp_destroy_message(&message) }
            return .delivery(
                channel: frame.channel,
                Self.received(
                    message, tag: tag, redelivered: redelivered, exchange: exchange, routingKey: routingKey))
        case MethodID.basicAck:
            let ack = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            return .confirm(tag: ack.delivery_tag, multiple: ack.multiple != 0, ack: true)
        case MethodID.basicNack:
            let nack = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            return .confirm(tag: nack.delivery_tag, multiple: nack.multiple != 0, ack: false)
        case MethodID.basicCancel:
            throw AMQPError(.connectionClosed, "the broker cancelled a consumer on channel \(frame.channel)")
        case MethodID.channelClose:
            let close = frame.payload.method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            throw AMQPError(
                .connectionClosed,
                "the broker closed channel \(frame.channel): \(close.reply_code) \(Self.string(close.reply_text))")
        case MethodID.connectionClose:
            let close = frame.payload.method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            throw AMQPError(
                .connectionClosed,
                "the broker closed the connection: \(close.reply_code) \(Self.string(close.reply_text))"
            )
        default:
            return .other
        }
    }

    /// Frees the memory of frames already handled (a no-op while frames are queued).
    func releaseBuffers() { amqp_maybe_release_buffers(state) }

    func settle(channel: amqp_channel_t, deliveryTag: UInt64, _ settlement: DeliverySettlement, multiple: Bool)
        throws
    {
        let status: Int32
        switch settlement {
        case .ack: status = amqp_basic_ack(state, channel, deliveryTag, multiple ? 1 : 0)
        case .requeue: status = amqp_basic_nack(state, channel, deliveryTag, multiple ? 1 : 0, 1)
        case .reject: status = amqp_basic_reject(state, channel, deliveryTag, 0)
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(.connectionClosed, "settling delivery \(deliveryTag): \(Self.statusText(status))")
        }
    }

    private static func received(
        _ content: amqp_message_t, tag: UInt64, redelivered: Bool, exchange: String, routingKey: String
    ) -> Received {
        let properties = content.properties
        let flags = UInt32(properties._flags)
        func field(_ flag: Int32, _ bytes: amqp_bytes_t) -> String? {
            flags & UInt32(flag) != 0 ? string(bytes) : nil
        }
        var headers: [String: String] = [:]
        var deliveryCount = 0
        if flags & UInt32(AMQP_BASIC_HEADERS_FLAG) != 0, let entries = properties.headers.entries {
            for index in 0..<Int(properties.headers.num_entries) {
                let entry = entries[index]
                let key = string(entry.key)
                switch Int32(entry.value.kind) {
                case Int32(AMQP_FIELD_KIND_UTF8.rawValue), Int32(AMQP_FIELD_KIND_BYTES.rawValue):
                    headers[key] = string(entry.value.value.bytes)
                case Int32(AMQP_FIELD_KIND_I64.rawValue), Int32(AMQP_FIELD_KIND_U64.rawValue):
                    if key == "x-delivery-count" { deliveryCount = Int(entry.value.value.i64) }
                    headers[key] = String(entry.value.value.i64)
                case Int32(AMQP_FIELD_KIND_I32.rawValue):
                    if key == "x-delivery-count" { deliveryCount = Int(entry.value.value.i32) }
                    headers[key] = String(entry.value.value.i32)
                default:
                    continue
                }
            }
        }
        let body = content.body
        let message = AMQPMessage(
            messageID: field(AMQP_BASIC_MESSAGE_ID_FLAG, properties.message_id) ?? "",
            correlationID: field(AMQP_BASIC_CORRELATION_ID_FLAG, properties.correlation_id),
            type: field(AMQP_BASIC_TYPE_FLAG, properties.type) ?? "",
            replyTo: field(AMQP_BASIC_REPLY_TO_FLAG, properties.reply_to),
            headers: headers,
            contentType: field(AMQP_BASIC_CONTENT_TYPE_FLAG, properties.content_type) ?? "",
            body: body.len == 0 ? [] : Array(UnsafeRawBufferPointer(start: body.bytes, count: body.len)),
            persistent: flags & UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG) != 0 && properties.delivery_mode == 2
        )
        return Received(
            message: message, deliveryTag: tag, redelivered: redelivered, exchange: exchange,
            routingKey: routingKey, deliveryCount: deliveryCount)
    }

    // MARK: Errors

    private static func check(_ reply: amqp_rpc_reply_t, _ code: AMQPError.Code, _ what: String) throws {
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        throw AMQPError(code, "\(what): \(replyText(reply))")
    }

    private static func replyText(_ reply: amqp_rpc_reply_t) -> String {
        switch reply.reply_type {
        case AMQP_RESPONSE_NONE:
            return "no reply (missing RPC reply type)"
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return statusText(reply.library_error)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            switch reply.reply.id {
            case MethodID.connectionClose:
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return "server closed the connection: \(close.reply_code) \(string(close.reply_text))"
            case MethodID.channelClose:
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return "server closed the channel: \(close.reply_code) \(string(close.reply_text))"
            default:
                return "server error, method 0x\(String(reply.reply.id, radix: 16))"
            }
        default:
            return "unknown reply type"
        }
    }

    static func statusText(_ status: Int32) -> String {
        String(cString: amqp_error_string2(status))
    }

    static func string(_ bytes: amqp_bytes_t) -> String {
        guard bytes.len > 0, let base = bytes.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: base, count: bytes.len), as: UTF8.self)
    }
}

/// Method ids that rabbitmq-c defines as casted macros, which Swift does not import.
enum MethodID {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicCancel: amqp_method_number_t = 0x003C_001E
}

/// A value in an AMQP field table.
enum FieldValue {
    case string(String)
    case int(Int64)
}

/// C strings that must outlive a call into rabbitmq-c; freed together when the arena goes.
/// (`amqp_cstring_bytes` on a Swift string would dangle after the expression.)
final class CStringArena {
    private var pointers: [UnsafeMutablePointer<CChar>] = []

    func bytes(_ string: String) -> amqp_bytes_t {
        guard let pointer = strdup(string) else { return c_amqp_empty_bytes() }
        pointers.append(pointer)
        return amqp_bytes_t(len: strlen(pointer), bytes: UnsafeMutableRawPointer(pointer))
    }

    deinit {
        pointers.forEach { free($0) }
    }
}

/// Builds a field table whose strings live in `arena`, valid for the duration of `body`.
func withFieldTable<Result>(
    _ fields: [(String, FieldValue)],
    arena: CStringArena,
    _ body: (amqp_table_t) throws -> Result
) rethrows -> Result {
    guard !fields.isEmpty else { return try body(c_amqp_empty_table()) }
    let entries = UnsafeMutablePointer<amqp_table_entry_t>.allocate(capacity: fields.count)
    defer { entries.deallocate() }
    for (index, (key, value)) in fields.enumerated() {
        var entry = amqp_table_entry_t()
        entry.key = arena.bytes(key)
        switch value {
        case .string(let text):
            entry.value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
            entry.value.value.bytes = arena.bytes(text)
        case .int(let number):
            entry.value.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
            entry.value.value.i64 = number
        }
        (entries + index).initialize(to: entry)
    }
    return try body(amqp_table_t(num_entries: Int32(fields.count), entries: entries))
}

extension timeval {
    init(_ seconds: Double) {
        let whole = Int(seconds)
        self.init(tv_sec: whole, tv_usec: Int(((seconds - Double(whole)) * 1_000_000).rounded()))
    }
}

/// Monotonic seconds, for deadlines on the AMQP threads.
enum Monotonic {
    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
