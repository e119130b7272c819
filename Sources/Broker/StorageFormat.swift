import KafkaProtocol
import Logging
import SystemIO

/// `meta.properties` in the log directory, as `kafka-storage format` writes it: the cluster id,
/// node id and directory id. An empty directory is formatted on first start.
public enum StorageFormat {
    public static let fileName = "meta.properties"

    public struct Info: Sendable, Equatable {
        public var clusterId: String
        public var nodeId: Int32
        public var directoryId: String
    }

    public static func read(logDir: String) -> Info? {
        guard let file = try? FileHandle.open("\(logDir)/\(fileName)", [.readOnly]),
              let size = try? file.size(), size < 1 << 20,
              let bytes = try? file.read(count: Int(size), at: 0)
        else { return nil }
        var values: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        guard let cluster = values["cluster.id"], let node = values["node.id"].flatMap({ Int32($0) }) else { return nil }
        return Info(clusterId: cluster, nodeId: node, directoryId: values["directory.id"] ?? "")
    }

    /// Writes meta.properties for a new directory; refuses to reformat one that has it.
    @discardableResult
    public static func format(logDir: String, nodeId: Int32, clusterId: String? = nil) throws -> Info {
        try Directory.create(logDir)
        if let existing = read(logDir: logDir) { return existing }
        let info = Info(clusterId: clusterId ?? Uuid.random().description, nodeId: nodeId, directoryId: Uuid.random().description)
        let text = "#\n#Written by sluice storage format\nversion=1\ncluster.id=\(info.clusterId)\nnode.id=\(nodeId)\ndirectory.id=\(info.directoryId)\n"
        let tmp = "\(logDir)/\(fileName).tmp"
        let f = try FileHandle.open(tmp, [.writeOnly, .create, .truncate])
        try f.writeAll(Array(text.utf8), at: 0)
        try f.sync()
        try f.close()
        try FileSystem.rename(tmp, to: "\(logDir)/\(fileName)")
        try FileSystem.syncDirectory(logDir)
        return info
    }

    /// The cluster id, formatting the directory when it is new; a node id mismatch is an error.
    static func ensureFormatted(logDir: String, nodeId: Int32, logger: Logger) throws -> String {
        if let info = read(logDir: logDir) {
            guard info.nodeId == nodeId else {
                throw FormatError.nodeIdMismatch(directory: logDir, stored: info.nodeId, configured: nodeId)
            }
            return info.clusterId
        }
        let info = try format(logDir: logDir, nodeId: nodeId)
        logger.info("formatted \(logDir): cluster.id=\(info.clusterId) node.id=\(nodeId)")
        return info.clusterId
    }

    public enum FormatError: Error, CustomStringConvertible {
        case nodeIdMismatch(directory: String, stored: Int32, configured: Int32)
        public var description: String {
            switch self {
            case let .nodeIdMismatch(d, s, c): "\(d) belongs to node.id \(s), but this broker is configured as node.id \(c)"
            }
        }
    }
}
