import Crypto

/// The SCRAM mechanisms Kafka has, with their ScramMechanism wire codes.
public enum ScramMechanism: Int8, Sendable, CaseIterable {
    case sha256 = 1, sha512 = 2

    public var name: String { self == .sha256 ? "SCRAM-SHA-256" : "SCRAM-SHA-512" }

    /// Kafka's bounds on the iteration count of a stored credential.
    public static let minIterations: Int32 = 4096
    public static let maxIterations: Int32 = 16384
}

/// What a broker keeps of a SCRAM password (RFC 5802): never the password nor the salted
/// password, only the salt, the iteration count, StoredKey = H(HMAC(SaltedPassword, "Client Key"))
/// and ServerKey = HMAC(SaltedPassword, "Server Key").
public struct ScramCredential: Sendable, Equatable {
    public var mechanism: ScramMechanism
    public var salt: [UInt8]
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]
    public var iterations: Int32

    public init(mechanism: ScramMechanism, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8], iterations: Int32) {
        self.mechanism = mechanism
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
        self.iterations = iterations
    }

    /// The credential for a salted password as AlterUserScramCredentials carries it (the client
    /// computed Hi(password, salt, iterations)).
    public init(mechanism: ScramMechanism, salt: [UInt8], saltedPassword: [UInt8], iterations: Int32) {
        let clientKey = Self.hmac(mechanism, key: saltedPassword, Array("Client Key".utf8))
        self.init(mechanism: mechanism, salt: salt, storedKey: Self.hash(mechanism, clientKey),
                  serverKey: Self.hmac(mechanism, key: saltedPassword, Array("Server Key".utf8)), iterations: iterations)
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with the mechanism's HMAC, one block.
    public static func saltedPassword(_ mechanism: ScramMechanism, password: [UInt8], salt: [UInt8], iterations: Int32) -> [UInt8] {
        var u = hmac(mechanism, key: password, salt + [0, 0, 0, 1])
        var result = u
        for _ in 1..<max(1, Int(iterations)) {
            u = hmac(mechanism, key: password, u)
            for i in result.indices { result[i] ^= u[i] }
        }
        return result
    }

    public static func hmac(_ mechanism: ScramMechanism, key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        let k = SymmetricKey(data: key)
        switch mechanism {
        case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: message, using: k))
        case .sha512: return Array(HMAC<SHA512>.authenticationCode(for: message, using: k))
        }
    }

    public static func hash(_ mechanism: ScramMechanism, _ data: [UInt8]) -> [UInt8] {
        switch mechanism {
        case .sha256: return Array(SHA256.hash(data: data))
        case .sha512: return Array(SHA512.hash(data: data))
        }
    }
}
