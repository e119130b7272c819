import NIOCore

/// Which header version goes with which API version, and the framing of whole requests and
/// responses around the generated bodies.
public enum KafkaHeaders {
    /// Request header version: v2 for flexible API versions, v1 otherwise (v0 only for
    /// ControlledShutdown v0). Unknown keys get v1, the most any non-flexible client sends.
    public static func requestHeaderVersion(apiKey: Int16, apiVersion: Int16) -> Int16 {
        guard let key = ApiKey(rawValue: apiKey) else { return 1 }
        if key == .controlledShutdown && apiVersion == 0 { return 0 }
        if let start = key.flexibleVersionsStart, apiVersion >= start { return 2 }
        return 1
    }

    /// Response header version: v1 for flexible API versions, v0 otherwise — and always v0 for
    /// ApiVersions, so that a client can read the answer before it knows what we speak (KIP-511).
    public static func responseHeaderVersion(apiKey: Int16, apiVersion: Int16) -> Int16 {
        guard let key = ApiKey(rawValue: apiKey), key != .apiVersions else { return 0 }
        if let start = key.flexibleVersionsStart, apiVersion >= start { return 1 }
        return 0
    }

    /// Reads a request header from the start of a frame. For ApiVersions newer than the schemas,
    /// the flexible header is assumed (clients send v3+ that way), so the correlation id and
    /// client id can still be read and answered.
    public static func decodeRequestHeader(from frame: inout ByteBuffer) throws(DecodeError) -> RequestHeader {
        guard let apiKey = frame.getInteger(at: frame.readerIndex, as: Int16.self),
              let apiVersion = frame.getInteger(at: frame.readerIndex + 2, as: Int16.self)
        else { throw DecodeError(.truncated(needed: 4, remaining: frame.readableBytes), field: "RequestApiKey", message: "RequestHeader") }
        var headerVersion = requestHeaderVersion(apiKey: apiKey, apiVersion: apiVersion)
        if apiKey == ApiKey.apiVersions.rawValue && apiVersion > ApiKey.apiVersions.schemaVersions.upperBound {
            headerVersion = 2
        }
        return try RequestHeader.decode(from: &frame, version: headerVersion)
    }

    /// A whole request frame: size, header, body.
    public static func encodeRequest<M: KafkaMessage>(
        _ body: M, version: Int16, correlationId: Int32, clientId: String?,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 128)
        buffer.writeInteger(Int32(0))  // size, patched below
        let header = RequestHeader(requestApiKey: M.apiKey, requestApiVersion: version, correlationId: correlationId, clientId: clientId)
        header.encode(into: &buffer, version: requestHeaderVersion(apiKey: M.apiKey, apiVersion: version))
        body.encode(into: &buffer, version: version)
        buffer.setInteger(Int32(buffer.readableBytes - 4), at: buffer.readerIndex)
        return buffer
    }

    /// A whole response frame: size, header, body.
    public static func encodeResponse<M: KafkaMessage>(
        _ body: M, version: Int16, correlationId: Int32, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 128)
        writeResponse(body, version: version, correlationId: correlationId, into: &buffer)
        return buffer
    }

    public static func writeResponse<M: KafkaMessage>(_ body: M, version: Int16, correlationId: Int32, into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        buffer.writeInteger(Int32(0))
        let header = ResponseHeader(correlationId: correlationId)
        header.encode(into: &buffer, version: responseHeaderVersion(apiKey: M.apiKey, apiVersion: version))
        body.encode(into: &buffer, version: version)
        buffer.setInteger(Int32(buffer.writerIndex - start - 4), at: start)
    }

    /// The answer to an ApiVersions request whose version we do not support (KIP-511): a v0 body
    /// with UNSUPPORTED_VERSION and our supported ranges, under response header v0.
    public static func unsupportedApiVersionsResponse(
        correlationId: Int32, supported: [ApiVersionsResponse.ApiVersion]
    ) -> ByteBuffer {
        let body = ApiVersionsResponse(errorCode: ErrorCode.unsupportedVersion.rawValue, apiKeys: supported)
        return encodeResponse(body, version: 0, correlationId: correlationId)
    }
}
