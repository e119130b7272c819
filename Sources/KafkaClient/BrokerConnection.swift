#if canImport(Glibc)
import Glibc
#endif
import KafkaProtocol
import NIOCore

/// A blocking connection to one broker, for the CLI tools: send a request, read its response.
/// Versions are negotiated once with ApiVersions (v0, which every broker answers).
public final class BrokerConnection {
    public enum ClientError: Error, CustomStringConvertible {
        case connect(String, Int32)
        case io(Int32)
        case closed
        case protocolError(String)
        case kafka(ErrorCode, String?)

        public var description: String {
            switch self {
            case let .connect(address, e): "cannot connect to \(address): \(String(cString: strerror(e)))"
            case .io(let e): "I/O error: \(String(cString: strerror(e)))"
            case .closed: "the broker closed the connection"
            case .protocolError(let s): "protocol error: \(s)"
            case let .kafka(code, message): "\(code.name)\(message.map { ": \($0)" } ?? "")"
            }
        }
    }

    let fd: Int32
    public let clientId: String
    private var correlationId: Int32 = 0
    private var versions: [Int16: ClosedRange<Int16>] = [:]

    public init(host: String, port: Int, clientId: String = "sluice-cli") throws {
        self.clientId = clientId
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else {
            throw ClientError.connect("\(host):\(port)", EHOSTUNREACH)
        }
        defer { freeaddrinfo(result) }
        let s = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw ClientError.connect("\(host):\(port)", errno) }
        guard connect(s, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let e = errno
            close(s)
            throw ClientError.connect("\(host):\(port)", e)
        }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        fd = s
        let answer = try send(ApiVersionsRequest(), version: 0, as: ApiVersionsResponse.self)
        for key in answer.apiKeys { versions[key.apiKey] = key.minVersion...key.maxVersion }
    }

    /// "host:port" of the first bootstrap server.
    public convenience init(bootstrap: String, clientId: String = "sluice-cli") throws {
        let first = bootstrap.split(separator: ",").first.map(String.init) ?? bootstrap
        guard let colon = first.lastIndex(of: ":"), let port = Int(first[first.index(after: colon)...]) else {
            throw ClientError.protocolError("bootstrap server must be host:port, got \(bootstrap)")
        }
        try self.init(host: String(first[..<colon]), port: port, clientId: clientId)
    }

    deinit { close(fd) }

    /// The highest version both sides speak, at most `preferred`.
    public func version(for key: ApiKey, preferred: Int16) throws -> Int16 {
        guard let range = versions[key.rawValue], range.lowerBound <= preferred else {
            throw ClientError.protocolError("the broker does not support \(key.name)")
        }
        return min(range.upperBound, preferred)
    }

    public func send<Request: KafkaMessage, Response: KafkaMessage>(
        _ request: Request, version: Int16, as: Response.Type
    ) throws -> Response {
        let id = try submit(request, version: version)
        return try receive(Request.self, correlationId: id, version: version, as: Response.self)
    }

    /// Writes a request without waiting for its response; returns its correlation id. Responses
    /// come back in the order the requests were written (Kafka answers a connection in order),
    /// so a caller keeping several in flight reads them with `receive` in that order.
    public func submit<Request: KafkaMessage>(_ request: Request, version: Int16) throws -> Int32 {
        correlationId += 1
        try writeAll(KafkaHeaders.encodeRequest(request, version: version, correlationId: correlationId, clientId: clientId))
        return correlationId
    }

    /// Reads the next response, which must be the one to the request `submit` numbered `correlationId`.
    public func receive<Request: KafkaMessage, Response: KafkaMessage>(
        _: Request.Type, correlationId expected: Int32, version: Int16, as: Response.Type
    ) throws -> Response {
        var response = try readFrame()
        let headerVersion = KafkaHeaders.responseHeaderVersion(apiKey: Request.apiKey, apiVersion: version)
        let header = try ResponseHeader.decode(from: &response, version: headerVersion)
        guard header.correlationId == expected else {
            throw ClientError.protocolError("correlation id \(header.correlationId), expected \(expected)")
        }
        return try Response.decode(from: &response, version: version)
    }

    /// Sends a request that gets no response (Produce with acks=0).
    public func sendOneWay<Request: KafkaMessage>(_ request: Request, version: Int16) throws {
        correlationId += 1
        try writeAll(KafkaHeaders.encodeRequest(request, version: version, correlationId: correlationId, clientId: clientId))
    }

    private func writeAll(_ buffer: ByteBuffer) throws {
        try buffer.withUnsafeReadableBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + done, raw.count - done, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ClientError.io(errno)
                }
                done += n
            }
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            if n == 0 { throw ClientError.closed }
            if n < 0 {
                if errno == EINTR { continue }
                throw ClientError.io(errno)
            }
            done += n
        }
        return out
    }

    private func readFrame() throws -> ByteBuffer {
        let sizeBytes = try readExactly(4)
        let size = Int(Int32(bigEndian: sizeBytes.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
        guard size >= 4 && size <= 512 << 20 else { throw ClientError.protocolError("response frame of \(size) bytes") }
        return ByteBuffer(bytes: try readExactly(size))
    }
}
