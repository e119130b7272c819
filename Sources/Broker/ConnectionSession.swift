import KafkaProtocol
import Security

/// One connection's identity: the listener it came in on, who it is, and where its SASL login
/// stands. Read and changed only on the connection's event loop (the SASL requests are answered
/// there, and every request reads the principal when it starts).
final class ConnectionSession: @unchecked Sendable {
    enum Login {
        /// A SASL listener before SaslHandshake, or a handshake that chose `mechanism`.
        case awaitingHandshake
        case handshaken(SaslMechanism)
        /// A SCRAM exchange between its first and final message.
        case scram(ScramServer)
        case done
    }

    let listener: Listener
    let clientHost: String
    private(set) var principal: RequestPrincipal
    var login: Login
    /// The frame limit the connection's decoder applies; lifted once the login is done.
    let frameCap: FrameCap?
    /// Set when a failed login must close the connection once its answer is written.
    var closeAfterResponse = false

    init(listener: Listener, clientHost: String, preAuthenticationFrameBytes: Int) {
        self.listener = listener
        self.clientHost = clientHost
        principal = .anonymous(host: clientHost)
        login = listener.securityProtocol.usesSasl ? .awaitingHandshake : .done
        frameCap = listener.securityProtocol.usesSasl ? FrameCap(bytes: preAuthenticationFrameBytes) : nil
    }

    var authenticated: Bool {
        if case .done = login { return true }
        return false
    }

    func authenticated(as user: String) {
        principal = RequestPrincipal(principal: "User:\(user)", host: clientHost)
        login = .done
        frameCap?.bytes = Int.max
    }

    /// What a connection may send before its login is done (Kafka closes it on anything else).
    static func allowedBeforeLogin(_ key: ApiKey) -> Bool {
        key == .apiVersions || key == .saslHandshake || key == .saslAuthenticate
    }
}
