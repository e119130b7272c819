import Foundation
import Testing
@testable import Security

@Suite("SCRAM credentials")
struct ScramCredentialTests {
    /// RFC 7677's SCRAM-SHA-256 exchange: the server signature computed from the stored
    /// ServerKey must be the one the RFC shows.
    @Test("RFC 7677's example: the ServerKey kept signs the exchange as the RFC does")
    func rfc7677() throws {
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        let salted = ScramCredential.saltedPassword(.sha256, password: Array("pencil".utf8), salt: salt, iterations: 4096)
        let credential = ScramCredential(mechanism: .sha256, salt: salt, saltedPassword: salted, iterations: 4096)
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        let authMessage = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=\(nonce),s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=\(nonce)"
        let signature = ScramCredential.hmac(.sha256, key: credential.serverKey, Array(authMessage.utf8))
        #expect(Data(signature).base64EncodedString() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        // And the client's proof verifies against StoredKey: H(proof XOR HMAC(StoredKey, msg)) == StoredKey.
        let proof = Array(Data(base64Encoded: "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")!)
        let clientSignature = ScramCredential.hmac(.sha256, key: credential.storedKey, Array(authMessage.utf8))
        let clientKey = zip(proof, clientSignature).map { $0 ^ $1 }
        #expect(ScramCredential.hash(.sha256, clientKey) == credential.storedKey)
        #expect(credential.storedKey != salted && credential.serverKey != salted)
    }

    @Test("SHA-512 keys are 64 bytes and differ from SHA-256's")
    func sha512() {
        let salted = ScramCredential.saltedPassword(.sha512, password: Array("pw".utf8), salt: [1, 2, 3], iterations: 4096)
        let c = ScramCredential(mechanism: .sha512, salt: [1, 2, 3], saltedPassword: salted, iterations: 4096)
        #expect(salted.count == 64 && c.storedKey.count == 64 && c.serverKey.count == 64)
        #expect(c.storedKey != c.serverKey)
    }
}
