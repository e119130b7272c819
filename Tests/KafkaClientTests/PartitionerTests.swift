import Testing
import KafkaClient

@Suite("Java's default partitioner")
struct PartitionerTests {
    @Test("murmur2 matches Kafka's values (the same as kafka-python's port)")
    func murmur2Vectors() {
        #expect(Partitioner.murmur2(Array("21".utf8)) == -973_932_308)
        #expect(Partitioner.murmur2(Array("foobar".utf8)) == -790_332_482)
        #expect(Partitioner.murmur2(Array("a-little-bit-long-string".utf8)) == -985_981_536)
        #expect(Partitioner.murmur2(Array("abc".utf8)) == 479_470_107)
        #expect(Partitioner.murmur2([]) == 275_646_681)
    }

    @Test("partitions are non-negative and below the count")
    func partitionRange() {
        for i in 0..<1000 {
            let p = Partitioner.partition(forKey: Array("key-\(i)".utf8), partitions: 7)
            #expect(p >= 0 && p < 7)
        }
    }
}
