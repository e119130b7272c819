#if canImport(Glibc)
import Glibc
#endif

/// Directory listing and creation for the storage layer.
public enum Directory {
    /// Entry names (without "." and ".."), unsorted.
    public static func list(_ path: String) throws(Errno) -> [String] {
        guard let dir = opendir(path) else { throw Errno.current }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    public static func fileExists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// mkdir -p.
    public static func create(_ path: String, permissions: mode_t = 0o755) throws(Errno) {
        if exists(path) { return }
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, permissions) == 0 {
                FileObservers.created(prefix)
            } else if errno != EEXIST {
                throw Errno.current
            }
        }
    }

    /// Removes a directory and everything in it.
    public static func removeTree(_ path: String) throws(Errno) {
        for name in try list(path) {
            let child = "\(path)/\(name)"
            if exists(child) { try removeTree(child) } else if unlink(child) != 0 { throw Errno.current }
            FileObservers.removed(child)
        }
        if rmdir(path) != 0 { throw Errno.current }
        FileObservers.removed(path)
    }
}
