import NIOCore
import NIOSSL

/// TLS for outgoing mail. STARTTLS to a mail server is opportunistic
/// (RFC 7435): most servers have certificates no client could check, and
/// refusing them would only push mail back to plain text. So the handshake
/// never fails on the certificate; whether the chain verified against
/// `smtp_tls_CAfile` is recorded and logged (`Trusted` / `Untrusted`, as
/// Postfix does at its `may` and `encrypt` levels).
enum TLSClient {
    /// The context, made before the chroot: the certificate authorities are
    /// read from `caFile` now, since the file is not there afterwards.
    static func makeContext(caFile: String) throws -> (NIOSSLContext, certificateCount: Int) {
        var configuration = TLSConfiguration.makeClientConfiguration()
        var count = 0
        if let roots = try? NIOSSLCertificate.fromPEMFile(caFile), !roots.isEmpty {
            configuration.trustRoots = .certificates(roots)
            count = roots.count
        } else {
            configuration.trustRoots = .certificates([])
        }
        // Chains are checked (and the result recorded) but names are not:
        // an MX host's name is not authenticated by anything at this level.
        configuration.certificateVerification = .noHostnameVerification
        return (try NIOSSLContext(configuration: configuration), count)
    }
}

/// Records what the certificate check found, for one connection. Written
/// during the handshake on the connection's event loop, read after it.
final class TrustRecorder: @unchecked Sendable {
    var verified = true
    var problem = ""

    /// The handler for one connection. NIOSSL's per-certificate callback
    /// sees the library's own verdict for each certificate of the chain;
    /// every failure is noted and overridden, so the handshake goes on.
    /// (It is the one NIOSSL interface that reports the built-in verdict
    /// without replacing the verification itself.)
    static func makeHandler(context: NIOSSLContext, serverHostname: String, recorder: TrustRecorder) throws -> NIOSSLClientHandler {
        let name = serverHostname.allSatisfy({ $0.isNumber || $0 == "." || $0 == ":" }) ? nil : serverHostname
        let legacy: LegacyVerifying.Type = LegacyVerification.self
        return try legacy.handler(context: context, serverHostname: name) { verdict, _ in
            if verdict == .failed {
                recorder.verified = false
                recorder.problem = "certificate chain not verified"
            }
            return .certificateVerified
        }
    }

}

/// NIOSSL marks its per-certificate callback deprecated in favour of one
/// that replaces verification altogether, which is not what is wanted
/// here. Reaching it through a protocol keeps the one use in one place.
protocol LegacyVerifying {
    static func handler(context: NIOSSLContext, serverHostname: String?,
                        callback: @escaping NIOSSLVerificationCallback) throws -> NIOSSLClientHandler
}

enum LegacyVerification: LegacyVerifying {
    @available(*, deprecated, message: "NIOSSL's per-certificate verification callback")
    static func handler(context: NIOSSLContext, serverHostname: String?,
                        callback: @escaping NIOSSLVerificationCallback) throws -> NIOSSLClientHandler {
        try NIOSSLClientHandler(context: context, serverHostname: serverHostname, verificationCallback: callback)
    }
}
