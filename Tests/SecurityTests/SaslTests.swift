import Foundation
import Testing
@testable import Security

@Suite("SASL logins")
struct SaslTests {
    static let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
    static let credential = ScramCredential(
        mechanism: .sha256, salt: salt,
        saltedPassword: ScramCredential.saltedPassword(.sha256, password: Array("pencil".utf8), salt: salt, iterations: 4096), iterations: 4096)
    static let serverNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    static let nonce = "rOprNGfwEbeRWgbNEkqO" + serverNonce

    static func first(_ server: inout ScramServer, _ message: String = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO") -> Result<[UInt8], SaslFailure> {
        server.receiveFirst(Array(message.utf8), serverNonce: serverNonce) { $0 == "user" ? credential : nil }
    }

    @Test("RFC 7677's SCRAM-SHA-256 exchange, byte for byte")
    func rfc7677Exchange() throws {
        var server = ScramServer(mechanism: .sha256)
        let serverFirst = try Self.first(&server).get()
        #expect(String(decoding: serverFirst, as: UTF8.self) == "r=\(Self.nonce),s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        let final = "c=biws,r=\(Self.nonce),p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        let (serverFinal, user) = try server.receiveFinal(Array(final.utf8)).get()
        #expect(String(decoding: serverFinal, as: UTF8.self) == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        #expect(user == "user")
    }

    @Test("a wrong proof, a swapped nonce, a changed channel binding or an unknown user fail")
    func scramFailures() throws {
        let proof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        for final in ["c=biws,r=\(Self.nonce),p=AHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                      "c=biws,r=rOprNGfwEbeRWgbNEkqOother,\(proof)",
                      "c=eSws,r=\(Self.nonce),\(proof)",
                      "c=biws,r=\(Self.nonce)"] {
            var server = ScramServer(mechanism: .sha256)
            _ = try Self.first(&server).get()
            #expect(throws: SaslFailure.self, "\(final)") { try server.receiveFinal(Array(final.utf8)).get() }
        }
        var server = ScramServer(mechanism: .sha256)
        #expect(throws: SaslFailure.self) { try Self.first(&server, "n,,n=mallory,r=abc").get() }
        #expect(throws: SaslFailure.self) { try Self.first(&server, "p=tls-unique,,n=user,r=abc").get() }
        #expect(throws: SaslFailure.self) { try Self.first(&server, "n,,n=user,r=abc,tokenauth=true").get() }
        // A SHA-512 login cannot use a SHA-256 credential.
        var other = ScramServer(mechanism: .sha512)
        #expect(throws: SaslFailure.self) { try Self.first(&other).get() }
        // A final message with no first one before it.
        var fresh = ScramServer(mechanism: .sha256)
        #expect(throws: SaslFailure.self) { try fresh.receiveFinal(Array("c=biws,r=\(Self.nonce),\(proof)".utf8)).get() }
    }

    @Test("saslname escapes: =2C and =3D, nothing else after =")
    func unescape() {
        #expect(ScramServer.unescape("a=2Cb=3Dc") == "a,b=c")
        #expect(ScramServer.unescape("a=41") == nil)
        #expect(ScramServer.unescape("plain") == "plain")
    }

    @Test("PLAIN checks the user's password and the authorization id")
    func plain() {
        let users = ["alice": "alice-secret"]
        func login(_ text: String) -> Result<String, SaslFailure> { PlainLogin.authenticate(Array(text.utf8), users: users) }
        #expect((try? login("\0alice\0alice-secret").get()) == "alice")
        #expect((try? login("alice\0alice\0alice-secret").get()) == "alice")
        #expect((try? login("\0alice\0wrong").get()) == nil)
        #expect((try? login("\0bob\0alice-secret").get()) == nil)
        #expect((try? login("bob\0alice\0alice-secret").get()) == nil)
        #expect((try? login("alice-secret").get()) == nil)
    }

    @Test("JAAS lines: PlainLoginModule's user_ options")
    func jaas() {
        let line = #"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="a b;c";"#
        #expect(JaasConfig.plainUsers(line) == ["admin": "admin-secret", "alice": "a b;c"])
        #expect(JaasConfig.options(line)["username"] == "admin")
        #expect(constantTimeEqual([1, 2], [1, 2]) && !constantTimeEqual([1, 2], [1, 3]) && !constantTimeEqual([1], [1, 2]))
    }
}
