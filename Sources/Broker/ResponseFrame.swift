#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// A descriptor a response owns until it is handed to a FileRegion (or closed unused).
final class OwnedDescriptor: @unchecked Sendable {
    private(set) var descriptor: Int32
    init(_ descriptor: Int32) { self.descriptor = descriptor }

    /// Hands the descriptor over; the caller closes it from now on.
    func take() -> Int32 {
        let d = descriptor
        descriptor = -1
        return d
    }

    deinit { if descriptor >= 0 { close(descriptor) } }
}

/// A response as written to the socket: bytes from memory and ranges of segment files, which go
/// out with sendfile (Fetch), so record bytes are never copied through user space.
struct ResponseFrame: Sendable {
    enum Part: Sendable {
        case bytes(ByteBuffer)
        case file(OwnedDescriptor, position: Int64, length: Int)
    }

    var parts: [Part]

    init(_ buffer: ByteBuffer) { parts = [.bytes(buffer)] }
    init(parts: [Part]) { self.parts = parts }
}

extension ResponseFrame {
    /// Bytes on the wire, size prefix included.
    var byteCount: Int {
        parts.reduce(0) { total, part in
            switch part {
            case .bytes(let b): total + b.readableBytes
            case .file(_, _, let length): total + length
            }
        }
    }
}

extension Broker {
    /// For in-process drivers (the request-path fuzzer, benchmarks): handles one request frame
    /// (without its size prefix) as a connection would, and reports the response's size on the
    /// wire (nil: the request gets no response). A failed future means the broker would close
    /// the connection. File ranges of Fetch responses are released, not read.
    public func respondSize(to frame: ByteBuffer, eventLoop: EventLoop) -> EventLoopFuture<Int?> {
        let listener = Listener(name: "PLAINTEXT", host: config.listenerHost, port: config.listenerPort, securityProtocol: .plaintext,
                                advertisedHost: config.advertised.host, advertisedPort: config.advertised.port)
        let session = ConnectionSession(listener: listener, clientHost: "in-process", preAuthenticationFrameBytes: Int.max)
        return handle(frame: frame, eventLoop: eventLoop, session: session).map { $0?.byteCount }
    }
}
