import ArgumentParser
import KafkaClient
import KafkaProtocol
import Security

/// `sluice configs --entity-type users`, shaped like kafka-configs.sh: SCRAM credentials. The
/// password is salted here, as Kafka's tool does, so only the salted form reaches the broker.
struct Configs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe or alter SCRAM credentials of users (like kafka-configs.sh --entity-type users).",
        discussion: "Example: sluice configs --bootstrap-server 127.0.0.1:9092 --alter --entity-type users --entity-name alice --add-config 'SCRAM-SHA-256=[iterations=8192,password=alice-secret]'")

    @Option(name: .customLong("bootstrap-server")) var bootstrap: String
    @Flag var describe = false
    @Flag var alter = false
    @Option(name: .customLong("entity-type")) var entityType: String
    @Option(name: .customLong("entity-name")) var entityName: String?
    @Option(name: .customLong("add-config"), help: "SCRAM-SHA-256=[iterations=N,password=P],SCRAM-SHA-512=[password=P]")
    var addConfig: String?
    @Option(name: .customLong("delete-config"), help: "SCRAM-SHA-256,SCRAM-SHA-512") var deleteConfig: String?

    func validate() throws {
        guard describe != alter else { throw ValidationError("exactly one of --describe, --alter") }
        guard entityType == "users" else { throw ValidationError("--entity-type: only users (SCRAM credentials) is supported") }
        if alter && entityName == nil { throw ValidationError("--alter needs --entity-name") }
        if alter && addConfig == nil && deleteConfig == nil { throw ValidationError("--alter needs --add-config or --delete-config") }
        _ = try Self.scramSettings(addConfig ?? "")
    }

    /// `SCRAM-SHA-256=[iterations=8192,password=x],SCRAM-SHA-512=[password=y]` -> (mechanism, iterations, password).
    static func scramSettings(_ text: String) throws -> [(ScramMechanism, Int32, String)] {
        var out: [(ScramMechanism, Int32, String)] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            guard let eq = rest.firstIndex(of: "="), let open = rest[eq...].firstIndex(of: "["), let close = rest[open...].firstIndex(of: "]") else {
                throw ValidationError("--add-config: expected MECHANISM=[iterations=N,password=P], got \(rest)")
            }
            let name = String(rest[..<eq]).filter { $0 != " " && $0 != "," }
            guard let mechanism = ScramMechanism.allCases.first(where: { $0.name == name }) else {
                throw ValidationError("--add-config: unknown mechanism \(name) (SCRAM-SHA-256 or SCRAM-SHA-512)")
            }
            var iterations: Int32 = ScramMechanism.minIterations
            var password: String?
            for item in rest[rest.index(after: open)..<close].split(separator: ",") {
                let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { throw ValidationError("--add-config: expected key=value, got \(item)") }
                switch kv[0] {
                case "iterations":
                    guard let n = Int32(kv[1]) else { throw ValidationError("--add-config: iterations must be a number") }
                    iterations = n
                case "password": password = kv[1]
                default: throw ValidationError("--add-config: unknown key \(kv[0])")
                }
            }
            guard let password else { throw ValidationError("--add-config: \(name) needs a password") }
            out.append((mechanism, iterations, password))
            rest = rest[rest.index(after: close)...].drop(while: { $0 == "," || $0 == " " })
        }
        return out
    }

    func run() throws {
        let client = try KafkaClient(bootstrap: bootstrap)
        if describe {
            for (user, credentials) in try client.describeScramCredentials(entityName.map { [$0] }) {
                let text = credentials.map { c in
                    "\(ScramMechanism(rawValue: c.mechanism)?.name ?? "\(c.mechanism)")=iterations=\(c.iterations)"
                }.joined(separator: ", ")
                print("SCRAM credential configs for user-principal '\(user)' are \(text)")
            }
            return
        }
        let user = entityName!
        var g = SystemRandomNumberGenerator()
        let upsertions = try Self.scramSettings(addConfig ?? "").map { mechanism, iterations, password in
            let salt = (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
            return AlterUserScramCredentialsRequest.ScramCredentialUpsertion(
                name: user, mechanism: mechanism.rawValue, iterations: iterations, salt: salt,
                saltedPassword: ScramCredential.saltedPassword(mechanism, password: Array(password.utf8), salt: salt, iterations: iterations))
        }
        let deletions = try (deleteConfig ?? "").split(separator: ",").map { name -> AlterUserScramCredentialsRequest.ScramCredentialDeletion in
            let trimmed = String(name).filter { $0 != " " }
            guard let m = ScramMechanism.allCases.first(where: { $0.name == trimmed }) else {
                throw ValidationError("--delete-config: unknown mechanism \(trimmed)")
            }
            return .init(name: user, mechanism: m.rawValue)
        }
        try client.alterScramCredentials(upsertions: upsertions, deletions: deletions)
        print("Completed updating config for user \(user).")
    }
}
