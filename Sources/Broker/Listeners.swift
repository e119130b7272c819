import Security

/// Kafka's security protocols (`listener.security.protocol.map` values).
public enum SecurityProtocol: String, Sendable, CaseIterable {
    case plaintext = "PLAINTEXT", ssl = "SSL", saslPlaintext = "SASL_PLAINTEXT", saslSsl = "SASL_SSL"

    public var usesSasl: Bool { self == .saslPlaintext || self == .saslSsl }
}

/// One `NAME://host:port` entry of `listeners` or `advertised.listeners`.
public struct ListenerAddress: Sendable, Equatable {
    public var name: String
    public var host: String
    public var port: Int
}

/// A listener as the server runs it: where it binds, how its clients authenticate, and what
/// Metadata tells the clients that came in through it.
public struct Listener: Sendable, Equatable {
    public var name: String
    public var host: String
    public var port: Int
    public var securityProtocol: SecurityProtocol
    public var advertisedHost: String
    public var advertisedPort: Int
    /// The SASL mechanisms it accepts (SASL listeners only).
    public var saslMechanisms: [SaslMechanism] = []
    /// PLAIN's users, from `listener.name.<name>.plain.sasl.jaas.config`.
    public var plainUsers: [String: String] = [:]
}

extension BrokerConfig {
    /// Kafka's default map: each protocol is also a listener name.
    static let defaultProtocolMap = Dictionary(uniqueKeysWithValues: SecurityProtocol.allCases.map { ($0.rawValue, $0) })

    /// `NAME://host:port,...`: names unique, ports in range (an empty host binds every interface).
    static func listenerAddresses(_ value: String, _ key: String) throws(ConfigError) -> [ListenerAddress] {
        var out: [ListenerAddress] = []
        for entry in value.split(separator: ",").map({ String($0).trimmingCharacters(in: " ") }) where !entry.isEmpty {
            let parts = entry.components(separatedBy: "://")
            guard parts.count == 2, !parts[0].isEmpty, let colon = parts[1].lastIndex(of: ":"),
                  let port = Int(parts[1][parts[1].index(after: colon)...]), (0...65535).contains(port) else {
                throw .invalid("\(key): expected NAME://host:port entries, got \(entry)")
            }
            let name = parts[0].uppercased()
            if out.contains(where: { $0.name == name }) { throw .invalid("\(key): listener \(name) is named twice") }
            out.append(ListenerAddress(name: name, host: String(parts[1][..<colon]), port: port))
        }
        guard !out.isEmpty else { throw .invalid("\(key): no listener given") }
        return out
    }

    /// `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
    static func protocolMap(_ value: String) throws(ConfigError) -> [String: SecurityProtocol] {
        var map: [String: SecurityProtocol] = [:]
        for entry in value.split(separator: ",") {
            let pair = entry.split(separator: ":", maxSplits: 1).map { String($0).trimmingCharacters(in: " ") }
            guard pair.count == 2, let p = SecurityProtocol(rawValue: pair[1].uppercased()) else {
                throw .invalid("listener.security.protocol.map: expected NAME:PROTOCOL entries, got \(entry)")
            }
            map[pair[0].uppercased()] = p
        }
        return map
    }

    /// A listener-scoped property (`listener.name.<name>.<key>`), else the broker-wide one.
    func listenerProperty(_ listener: String, _ key: String) -> String? {
        listenerProperties["listener.name.\(listener.lowercased()).\(key)"] ?? listenerProperties[key]
    }

    /// The listeners, resolved and checked: every name has a protocol, SASL listeners have a
    /// mechanism Sluice serves (and PLAIN its users), TLS ones are refused until TLS exists.
    public func resolveListeners() throws(ConfigError) -> [Listener] {
        try listenerAddresses.map { (a) throws(ConfigError) -> Listener in
            guard let p = securityProtocolMap[a.name] else {
                throw .invalid("listeners: \(a.name) has no entry in listener.security.protocol.map")
            }
            if p == .ssl || p == .saslSsl { throw .invalid("listeners: \(a.name) is \(p.rawValue); TLS listeners are not built yet (issue #39)") }
            let advertised = advertisedAddresses.first { $0.name == a.name }
            var l = Listener(name: a.name, host: a.host.isEmpty ? "0.0.0.0" : a.host, port: a.port, securityProtocol: p,
                             advertisedHost: advertised?.host ?? (a.host.isEmpty || a.host == "0.0.0.0" ? "127.0.0.1" : a.host),
                             advertisedPort: advertised?.port ?? a.port)
            if p.usesSasl {
                let names = (listenerProperty(a.name, "sasl.enabled.mechanisms") ?? "GSSAPI").split(separator: ",")
                    .map { String($0).trimmingCharacters(in: " ").uppercased() }
                l.saslMechanisms = names.compactMap(SaslMechanism.init(rawValue:))
                guard !l.saslMechanisms.isEmpty else {
                    throw .invalid("sasl.enabled.mechanisms for \(a.name) is \(names.joined(separator: ",")); Sluice serves PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512")
                }
                if l.saslMechanisms.contains(.plain) {
                    let jaas = listenerProperties["listener.name.\(a.name.lowercased()).plain.sasl.jaas.config"]
                        ?? listenerProperty(a.name, "sasl.jaas.config") ?? ""
                    l.plainUsers = JaasConfig.plainUsers(jaas)
                    guard !l.plainUsers.isEmpty else {
                        throw .invalid("listener \(a.name) enables PLAIN but listener.name.\(a.name.lowercased()).plain.sasl.jaas.config names no user_<name>=\"<password>\"")
                    }
                }
            }
            return l
        }
    }
}
