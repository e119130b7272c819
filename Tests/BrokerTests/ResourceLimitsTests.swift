import Testing
@testable import Broker

@Suite("Resource limits at start")
struct ResourceLimitsTests {
    @Test("descriptors and mappings short of what the partitions need are named, with the value to set")
    func shortfalls() {
        let need = ResourceLimits.needs(partitions: 10_000, openSegments: 2048, connections: 1000)
        #expect(need.descriptors == 3 * 12_048 + 1000 + 256)
        #expect(need.mappings == 2 * 12_048 + 1024)
        let tight = ResourceLimits(descriptorsSoft: 20_000, descriptorsHard: 20_000, maxMapCount: 65_530)
        let lines = tight.shortfalls(partitions: 10_000, openSegments: 2048, connections: 1000)
        #expect(lines.count == 1)
        #expect(lines[0].contains("ulimit -n \(need.descriptors)"))
        let mapless = ResourceLimits(descriptorsSoft: 1 << 20, descriptorsHard: 1 << 20, maxMapCount: 20_000)
        #expect(mapless.shortfalls(partitions: 10_000, openSegments: 2048, connections: 1000)
                == ["10000 partitions need about \(need.mappings) memory mappings, but vm.max_map_count is 20000: raise it (sysctl -w vm.max_map_count=\(need.mappings))"])
        let roomy = ResourceLimits(descriptorsSoft: 1 << 20, descriptorsHard: 1 << 20, maxMapCount: 1 << 20)
        #expect(roomy.shortfalls(partitions: 10_000, openSegments: 2048, connections: 1000).isEmpty)
    }
}
