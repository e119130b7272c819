import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What hosting N partitions takes from the process limits, checked at start so that a broker
/// short of descriptors or mappings says so in one line instead of failing appends later.
///
/// Each partition's active segment holds three descriptors (log, offset and time index) and two
/// mappings (the indexes); sealed segments kept open (at most `sluice.segments.open.max`) hold the
/// same; connections hold one descriptor each.
public struct ResourceLimits {
    public var descriptorsSoft: Int
    public var descriptorsHard: Int
    public var maxMapCount: Int?

    /// Raises the soft descriptor limit to the hard one (as Kafka's packaging advises) and reads
    /// vm.max_map_count.
    public static func raiseAndRead() -> ResourceLimits {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let text = (try? String(contentsOfFile: "/proc/sys/vm/max_map_count", encoding: .utf8)) ?? ""
        return ResourceLimits(descriptorsSoft: Int(clamping: limit.rlim_cur), descriptorsHard: Int(clamping: limit.rlim_max),
                              maxMapCount: Int(text.trimmingCharacters(in: " \n")))
    }

    /// Descriptors and mappings `partitions` need with `openSegments` sealed segments kept open
    /// and `connections` clients (plus a margin for the broker's own files and threads).
    public static func needs(partitions: Int, openSegments: Int, connections: Int) -> (descriptors: Int, mappings: Int) {
        (descriptors: 3 * (partitions + openSegments) + connections + 256, mappings: 2 * (partitions + openSegments) + 1024)
    }

    /// One line per limit that is too low, saying what to raise and to what; empty when all fit.
    public func shortfalls(partitions: Int, openSegments: Int, connections: Int) -> [String] {
        let need = Self.needs(partitions: partitions, openSegments: openSegments, connections: connections)
        var out: [String] = []
        if need.descriptors > descriptorsSoft {
            out.append("\(partitions) partitions and \(connections) connections need about \(need.descriptors) file descriptors, "
                       + "but the limit is \(descriptorsSoft): raise it (ulimit -n \(need.descriptors), or LimitNOFILE= in a systemd unit)")
        }
        if let maxMapCount, need.mappings > maxMapCount {
            out.append("\(partitions) partitions need about \(need.mappings) memory mappings, but vm.max_map_count is "
                       + "\(maxMapCount): raise it (sysctl -w vm.max_map_count=\(need.mappings))")
        }
        return out
    }
}
