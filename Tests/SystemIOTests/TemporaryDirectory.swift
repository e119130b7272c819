#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under $TMPDIR (or /var/tmp, which is disk-backed and so supports O_DIRECT),
/// removed with its files afterwards.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "sluice-test") {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/var/tmp"
        var template = Array("\(base)/\(label)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: \(errno)")
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    deinit {
        _ = umount2(path, Int32(MNT_DETACH))  // in case a test mounted over it
        if let dir = opendir(path) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink("\(path)/\(name)") }
            }
            closedir(dir)
        }
        rmdir(path)
    }
}

/// A page-aligned buffer, as O_DIRECT needs.
final class AlignedBuffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int, alignment: Int = 4096) {
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: alignment)
    }

    deinit { bytes.deallocate() }
}
