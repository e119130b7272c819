import LogStorage
import Metrics

/// The broker's metrics through swift-metrics, named as Kafka's JMX exporter names them so that
/// existing dashboards recognise them. The backend (Prometheus) is chosen by the executable.
public struct BrokerMetrics: Sendable {
    let bytesIn = Counter(label: "kafka_server_brokertopicmetrics_bytesin_total")
    let bytesOut = Counter(label: "kafka_server_brokertopicmetrics_bytesout_total")
    let messagesIn = Counter(label: "kafka_server_brokertopicmetrics_messagesin_total")
    let failedProduce = Counter(label: "kafka_server_brokertopicmetrics_failedproducerequests_total")
    let failedFetch = Counter(label: "kafka_server_brokertopicmetrics_failedfetchrequests_total")
    let logFlush = MillisecondHistogram(label: Self.logFlushLabel)
    let partitions = Gauge(label: "kafka_server_replicamanager_partitioncount")
    let connections = Gauge(label: "kafka_server_socketservermetrics_connection_count")

    // The log cleaner, as Kafka's kafka.log:type=LogCleaner metrics, plus byte counters.
    let cleanerRecopyPercent = Gauge(label: "kafka_log_logcleaner_cleaner_recopy_percent")
    let cleanerMaxCleanTime = Gauge(label: "kafka_log_logcleaner_max_clean_time_secs")
    let cleanerBytesRead = Counter(label: "sluice_log_cleaner_bytes_read_total")
    let cleanerBytesWritten = Counter(label: "sluice_log_cleaner_bytes_written_total")
    let cleanerCleanings = Counter(label: "sluice_log_cleaner_cleanings_total")

    func recordCleaning(_ stats: CleanerStats, totals: LogCleaner.Totals) {
        cleanerRecopyPercent.record(100 * totals.lastRecopyRatio)
        cleanerMaxCleanTime.record(totals.maxSeconds)
        cleanerBytesRead.increment(by: stats.bytesRead)
        cleanerBytesWritten.increment(by: stats.bytesWritten)
        cleanerCleanings.increment()
    }

    func request(_ api: String) -> Counter {
        Counter(label: "kafka_network_requestmetrics_requests_total", dimensions: [("request", api)])
    }

    func requestTime(_ api: String) -> MillisecondHistogram {
        MillisecondHistogram(label: Self.requestTimeLabel, dimensions: [("request", api)])
    }

    static let requestTimeLabel = "kafka_network_requestmetrics_totaltimems"
    static let logFlushLabel = "kafka_log_logflushstats_logflushrateandtimems"

    /// The histograms whose values are milliseconds, as their Kafka names (`…TimeMs`) say. A
    /// backend gives them `millisecondBuckets` (swift-metrics' `Timer` would record seconds
    /// against buckets of 5 ms and up, where every produce request lands in the first).
    public static let millisecondHistograms = [requestTimeLabel, logFlushLabel]

    /// From 10 µs (an in-memory request) to 30 s (a long-polling fetch is at most its
    /// fetch.max.wait.ms, 500 ms by default).
    public static let millisecondBuckets: [Double] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
                                                      5000, 10000, 30000]
}

/// A latency histogram in milliseconds (a swift-metrics aggregating `Recorder`).
struct MillisecondHistogram: Sendable {
    private let recorder: Recorder

    init(label: String, dimensions: [(String, String)] = []) {
        recorder = Recorder(label: label, dimensions: dimensions, aggregate: true)
    }

    func recordNanoseconds(_ nanoseconds: Int64) {
        recorder.record(Double(nanoseconds) / 1_000_000)
    }
}
