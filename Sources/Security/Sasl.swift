import Foundation

/// The SASL mechanisms Sluice serves, by their registered names.
public enum SaslMechanism: String, Sendable, CaseIterable {
    case plain = "PLAIN"
    case scramSha256 = "SCRAM-SHA-256"
    case scramSha512 = "SCRAM-SHA-512"

    public var scram: ScramMechanism? {
        switch self {
        case .plain: nil
        case .scramSha256: .sha256
        case .scramSha512: .sha512
        }
    }
}

/// Why a login failed; the message goes to the client (Kafka's wording where it has one).
public struct SaslFailure: Error, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    static let invalidCredentials = SaslFailure("Authentication failed: Invalid username or password")
}

/// Equal length and equal bytes, in time that depends on the length only.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var diff: UInt8 = 0
    for i in a.indices { diff |= a[i] ^ b[i] }
    return diff == 0
}

/// SASL/PLAIN (RFC 4616): one message, `[authzid] NUL authcid NUL passwd`, checked against the
/// users of the listener's JAAS line.
public enum PlainLogin {
    /// The user name on success.
    public static func authenticate(_ message: [UInt8], users: [String: String]) -> Result<String, SaslFailure> {
        let parts = message.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let user = String(bytes: parts[1], encoding: .utf8), !user.isEmpty else {
            return .failure(SaslFailure("Authentication failed: invalid SASL/PLAIN message"))
        }
        let authzid = String(decoding: parts[0], as: UTF8.self)
        guard authzid.isEmpty || authzid == user else {
            return .failure(SaslFailure("Authentication failed: Client requested an authorization id that is different from username"))
        }
        // An unknown user costs the same comparison as a wrong password.
        let expected = Array((users[user] ?? "\u{0}unknown-user").utf8)
        guard constantTimeEqual(Array(parts[2]), expected), users[user] != nil else { return .failure(.invalidCredentials) }
        return .success(user)
    }
}

/// The server side of one SCRAM exchange (RFC 5802, RFC 7677), as a value: the client's first
/// message in, the server's first out; the client's final message in, the server's final out and
/// the user name. The server nonce is given by the caller, so the exchange is deterministic in
/// tests.
public struct ScramServer: Sendable {
    public let mechanism: ScramMechanism
    private var user: String?
    private var credential: ScramCredential?
    private var gs2Header = ""
    private var clientFirstBare = ""
    private var serverFirst = ""
    private var nonce = ""

    public init(mechanism: ScramMechanism) { self.mechanism = mechanism }

    /// Kafka's client-first extensions it understands; a delegation token login
    /// (`tokenauth=true`) is not served.
    public mutating func receiveFirst(_ message: [UInt8], serverNonce: String,
                                      credentials: (String) -> ScramCredential?) -> Result<[UInt8], SaslFailure> {
        guard let text = String(bytes: message, encoding: .utf8) else { return .failure(SaslFailure("Invalid SCRAM client first message")) }
        // gs2-header: "n,," or "n,a=authzid," (no channel binding over TCP).
        guard text.hasPrefix("n,") else { return .failure(SaslFailure("Invalid SCRAM client first message")) }
        let afterFlag = text.dropFirst(2)
        guard let comma = afterFlag.firstIndex(of: ",") else { return .failure(SaslFailure("Invalid SCRAM client first message")) }
        let authzid = afterFlag[..<comma]
        let bare = String(afterFlag[afterFlag.index(after: comma)...])
        let fields = Self.fields(bare)
        guard let rawName = fields["n"], let clientNonce = fields["r"], !clientNonce.isEmpty, let name = Self.unescape(rawName) else {
            return .failure(SaslFailure("Invalid SCRAM client first message"))
        }
        if fields["tokenauth"] == "true" { return .failure(SaslFailure("Authentication failed: delegation tokens are not supported")) }
        if !authzid.isEmpty && Self.unescape(String(authzid.dropFirst(2))) != name {
            return .failure(SaslFailure("Authentication failed: Invalid user credentials"))
        }
        guard let c = credentials(name), c.mechanism == mechanism else {
            return .failure(SaslFailure("Authentication failed: Invalid user credentials"))
        }
        user = name
        credential = c
        gs2Header = "n,\(authzid),"
        clientFirstBare = bare
        nonce = clientNonce + serverNonce
        serverFirst = "r=\(nonce),s=\(Data(c.salt).base64EncodedString()),i=\(c.iterations)"
        return .success(Array(serverFirst.utf8))
    }

    /// Checks the client's proof; on success the server's final message and the user name.
    public mutating func receiveFinal(_ message: [UInt8]) -> Result<([UInt8], String), SaslFailure> {
        guard let user, let credential, let text = String(bytes: message, encoding: .utf8),
              let proofStart = text.range(of: ",p=") else {
            return .failure(SaslFailure("Invalid SCRAM client final message"))
        }
        let withoutProof = String(text[..<proofStart.lowerBound])
        let fields = Self.fields(withoutProof)
        // The nonce must be the one this exchange made (CVE-2024-56128: a client may not swap it).
        guard fields["r"] == nonce else { return .failure(SaslFailure("Invalid SCRAM client final message: nonce mismatch")) }
        // The channel binding repeats the first message's gs2 header ("biws" for "n,,").
        guard let binding = fields["c"].flatMap({ Data(base64Encoded: $0) }), Array(binding) == Array(gs2Header.utf8) else {
            return .failure(SaslFailure("Invalid SCRAM client final message: channel binding"))
        }
        guard let proof = Data(base64Encoded: String(text[proofStart.upperBound...])).map(Array.init) else {
            return .failure(SaslFailure("Invalid SCRAM client final message: proof"))
        }
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let clientSignature = ScramCredential.hmac(mechanism, key: credential.storedKey, authMessage)
        guard proof.count == clientSignature.count else { return .failure(SaslFailure("Authentication failed: Invalid user credentials")) }
        let clientKey = zip(proof, clientSignature).map { $0 ^ $1 }
        guard constantTimeEqual(ScramCredential.hash(mechanism, clientKey), credential.storedKey) else {
            return .failure(SaslFailure("Authentication failed: Invalid user credentials"))
        }
        let serverSignature = ScramCredential.hmac(mechanism, key: credential.serverKey, authMessage)
        return .success((Array("v=\(Data(serverSignature).base64EncodedString())".utf8), user))
    }

    /// `k=v` attributes of a SCRAM message (values may contain '=').
    static func fields(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let eq = part.firstIndex(of: "=") else { continue }
            let key = String(part[..<eq])
            if out[key] == nil { out[key] = String(part[part.index(after: eq)...]) }
        }
        return out
    }

    /// saslname: "=2C" is ',', "=3D" is '='; any other '=' is invalid.
    static func unescape(_ name: String) -> String? {
        var out = ""
        var rest = Substring(name)
        while let eq = rest.firstIndex(of: "=") {
            out += rest[..<eq]
            let code = rest[rest.index(after: eq)...].prefix(2)
            switch code {
            case "2C": out += ","
            case "3D": out += "="
            default: return nil
            }
            rest = rest[rest.index(eq, offsetBy: 3)...]
        }
        return out + rest
    }
}

/// Kafka's JAAS lines, as far as a broker reads them: the options of
/// `...LoginModule required key="value" ...;`.
public enum JaasConfig {
    public static func options(_ line: String) -> [String: String] {
        var out: [String: String] = [:]
        var rest = Substring(line)
        // Skip the login module class and the control flag.
        for _ in 0..<2 {
            rest = rest.drop(while: { $0 == " " })
            rest = rest.drop(while: { $0 != " " && $0 != ";" })
        }
        while true {
            rest = rest.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" })
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = rest[..<eq].trimmingCharacters(in: .whitespaces)
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                guard let close = rest.firstIndex(of: "\"") else { break }
                value = String(rest[..<close])
                rest = rest[rest.index(after: close)...]
            } else {
                let end = rest.firstIndex(where: { $0 == " " || $0 == ";" }) ?? rest.endIndex
                value = String(rest[..<end])
                rest = rest[end...]
            }
            out[key] = value
        }
        return out
    }

    /// PlainLoginModule's `user_<name>="<password>"` options: the users a PLAIN listener accepts.
    public static func plainUsers(_ line: String) -> [String: String] {
        var users: [String: String] = [:]
        for (k, v) in options(line) where k.hasPrefix("user_") { users[String(k.dropFirst(5))] = v }
        return users
    }
}
