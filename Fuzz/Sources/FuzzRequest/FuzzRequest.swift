import KafkaProtocol
import NIOCore

/// Frames, request headers and every request body of every version: no input may crash,
/// hang or allocate without bound. The first bytes choose what to decode.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    // 1. As a stream of frames with headers and bodies.
    var stream = buffer
    let frames = FrameDecoder(frameBytesMax: 1 << 20)
    while let frame = try? frames.nextFrame(from: &stream) {
        var f = frame
        guard let header = try? KafkaHeaders.decodeRequestHeader(from: &f),
              let key = ApiKey(rawValue: header.requestApiKey),
              key.schemaVersions.contains(header.requestApiVersion)
        else { continue }
        _ = try? key.requestType.decode(from: &f, version: header.requestApiVersion)
    }
    // 2. As a body chosen by the first two bytes (api key, version), requests and responses.
    guard let selector = buffer.readInteger(as: UInt16.self) else { return 0 }
    let keys = ApiKey.allCases
    let key = keys[Int(selector >> 8) % keys.count]
    let span = Int(key.schemaVersions.upperBound - key.schemaVersions.lowerBound) + 1
    let version = key.schemaVersions.lowerBound + Int16(Int(selector & 0xFF) % span)
    var request = buffer
    _ = try? key.requestType.decode(from: &request, version: version)
    var response = buffer
    _ = try? key.responseType.decode(from: &response, version: version)
    return 0
}

// SwiftPM links executables with main defined as <Target>_main; hand it to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("FuzzRequest_main")
public func FuzzRequestMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzRequest(data, size) }
}
