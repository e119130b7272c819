import LogStorage
import Metrics

/// The broker's metrics through swift-metrics, named as Kafka's JMX exporter names them so that
/// existing dashboards recognise them. The backend (Prometheus) is chosen by the executable.
struct BrokerMetrics: Sendable {
    let bytesIn = Counter(label: "kafka_server_brokertopicmetrics_bytesin_total")
    let bytesOut = Counter(label: "kafka_server_brokertopicmetrics_bytesout_total")
    let messagesIn = Counter(label: "kafka_server_brokertopicmetrics_messagesin_total")
    let failedProduce = Counter(label: "kafka_server_brokertopicmetrics_failedproducerequests_total")
    let failedFetch = Counter(label: "kafka_server_brokertopicmetrics_failedfetchrequests_total")
    let logFlush = Timer(label: "kafka_log_logflushstats_logflushrateandtimems")
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

    func requestTime(_ api: String) -> Timer {
        Timer(label: "kafka_network_requestmetrics_totaltimems", dimensions: [("request", api)])
    }
}
