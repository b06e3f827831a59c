import CRabbitMQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One rabbitmq-c connection with one channel. Every call blocks, so an instance lives on exactly one thread of its
/// own (rabbitmq-c's rule: a connection is never shared between threads) and is never touched from the Swift
/// concurrency pool or an event loop. All C calls of the AMQP module are in this folder.
final class BlockingConnection {
    private let state: amqp_connection_state_t
    private let channel: amqp_channel_t = 1
    private var open = true
    /// The delivery tag the broker gives the next published message once confirms are on.
    private(set) var nextPublishTag: UInt64 = 1
    /// Server-generated names of exclusive queues, by the label the topology gave them.
    private(set) var queueNames: [String: String] = [:]

    init(configuration: AMQPConfiguration, confirms: Bool, connectTimeoutSeconds: Int = 5) throws {
        guard let state = amqp_new_connection() else {
            throw AMQPError(.connectionFailed, "amqp_new_connection failed (out of memory)")
        }
        self.state = state
        do {
            guard let socket = amqp_tcp_socket_new(state) else {
                throw AMQPError(.connectionFailed, "amqp_tcp_socket_new failed")
            }
            var timeout = timeval(tv_sec: connectTimeoutSeconds, tv_usec: 0)
            let status = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &timeout)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(
                    .connectionFailed,
                    "cannot reach \(configuration.host):\(configuration.port): \(Self.statusText(status))"
                )
            }
            let arena = CStringArena()
            let login = withFieldTable(
                [("connection_name", .string(configuration.connectionName)), ("product", .string("AWSomePets"))],
                arena: arena
            ) { properties in
                withUnsafePointer(to: properties) {
                    c_amqp_login_plain_with_properties(
                        state, configuration.vhost, 0, 131_072, 0, $0, configuration.user, configuration.password)
                }
            }
            try Self.check(login, .connectionFailed, "login to \(configuration.host):\(configuration.port)")
            amqp_channel_open(state, channel)
            try Self.check(amqp_get_rpc_reply(state), .connectionFailed, "channel.open")
            if confirms {
                amqp_confirm_select(state, channel)
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
            _ = amqp_channel_close(state, channel, AMQP_REPLY_SUCCESS)
            _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
        }
        amqp_destroy_connection(state)
    }

    // MARK: Topology

    func declare(_ topology: AMQPTopology) throws {
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

    /// Sends one message; with confirms on, its delivery tag is the `nextPublishTag` before the call.
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
                    state, channel, arena.bytes(outgoing.exchange), arena.bytes(outgoing.routingKey),
                    0, 0, &properties, body)
            }
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(.publishFailed, "basic.publish to \(outgoing.routingKey): \(Self.statusText(status))")
        }
        nextPublishTag += 1
    }

    /// Waits until the broker has confirmed every tag in `tags`; returns the tags it nacked.
    func waitForConfirms(_ tags: ClosedRange<UInt64>, timeoutSeconds: Int) throws -> Set<UInt64> {
        var pending = Set(tags)
        var nacked = Set<UInt64>()
        let deadline = Monotonic.now() + Double(timeoutSeconds)
        while !pending.isEmpty {
            let remaining = deadline - Monotonic.now()
            guard remaining > 0 else {
                throw AMQPError(.confirmTimeout, "\(pending.count) messages not confirmed in \(timeoutSeconds) s")
            }
            var timeout = timeval(remaining)
            var frame = amqp_frame_t()
            let status = amqp_simple_wait_frame_noblock(state, &frame, &timeout)
            if status == AMQP_STATUS_TIMEOUT.rawValue { continue }
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(.connectionClosed, "waiting for confirms: \(Self.statusText(status))")
            }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { continue }
            switch frame.payload.method.id {
            case MethodID.basicAck:
                let ack = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                _ = confirm(&pending, tag: ack.delivery_tag, multiple: ack.multiple != 0)
            case MethodID.basicNack:
                let nack = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
                nacked.formUnion(confirm(&pending, tag: nack.delivery_tag, multiple: nack.multiple != 0))
            case MethodID.channelClose, MethodID.connectionClose:
                throw AMQPError(.connectionClosed, "the broker closed the connection while confirming")
            default:
                continue
            }
        }
        return nacked
    }

    /// Removes the confirmed tags from `pending` and returns them (`multiple` confirms every tag up to `tag`).
    private func confirm(_ pending: inout Set<UInt64>, tag: UInt64, multiple: Bool) -> Set<UInt64> {
        let settled: Set<UInt64> = multiple ? pending.filter { $0 <= tag } : (pending.contains(tag) ? [tag] : [])
        pending.subtract(settled)
        return settled
    }

    // MARK: Consuming

    func startConsuming(queue label: String, prefetch: UInt16) throws {
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

    /// Reads the next delivery; nil when none came within the timeout or a non-delivery frame was consumed.
    func receive(timeoutSeconds: Int) throws -> Received? {
        amqp_maybe_release_buffers(state)
        var envelope = amqp_envelope_t()
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        let reply = amqp_consume_message(state, &envelope, &timeout, 0)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            defer { amqp_destroy_envelope(&envelope) }
            return Self.received(from: envelope)
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_TIMEOUT.rawValue:
            return nil
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue:
            // A frame other than a delivery is pending: a close from the broker, or something to skip.
            var frame = amqp_frame_t()
            let status = amqp_simple_wait_frame(state, &frame)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(.connectionClosed, "reading a frame: \(Self.statusText(status))")
            }
            if frame.frame_type == UInt8(AMQP_FRAME_METHOD),
                frame.payload.method.id == MethodID.channelClose || frame.payload.method.id == MethodID.connectionClose
            {
                throw AMQPError(.connectionClosed, "the broker closed the connection")
            }
            return nil
        default:
            throw AMQPError(.connectionClosed, "consume: \(Self.replyText(reply))")
        }
    }

    func settle(deliveryTag: UInt64, _ settlement: DeliverySettlement) throws {
        let status: Int32
        switch settlement {
        case .ack: status = amqp_basic_ack(state, channel, deliveryTag, 0)
        case .requeue: status = amqp_basic_nack(state, channel, deliveryTag, 0, 1)
        case .reject: status = amqp_basic_reject(state, channel, deliveryTag, 0)
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(.connectionClosed, "settling delivery \(deliveryTag): \(Self.statusText(status))")
        }
    }

    private static func received(from envelope: amqp_envelope_t) -> Received {
        let properties = envelope.message.properties
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
        let body = envelope.message.body
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
            message: message,
            deliveryTag: envelope.delivery_tag,
            redelivered: envelope.redelivered != 0,
            exchange: string(envelope.exchange),
            routingKey: string(envelope.routing_key),
            deliveryCount: deliveryCount
        )
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

    private static func statusText(_ status: Int32) -> String {
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
