/// The TLS 1.2 cipher suites a hikyaku TLS endpoint may be configured with:
/// every suite the bundled BoringSSL implements for TLS 1.2, by its OpenSSL
/// name and its IANA name. `smtpd_tls_cipherlist` names suites from this
/// table, so a typing error is reported with the name at fault instead of
/// reaching the TLS library (which stops the process on a list it cannot
/// use).
public enum TLSCipherList {
    public struct Suite: Equatable, Sendable {
        public let code: UInt16
        public let openSSLName: String
        public let ianaName: String
    }

    public static let suites: [Suite] = [
        Suite(code: 0xC02B, openSSLName: "ECDHE-ECDSA-AES128-GCM-SHA256", ianaName: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        Suite(code: 0xC02F, openSSLName: "ECDHE-RSA-AES128-GCM-SHA256", ianaName: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        Suite(code: 0xC02C, openSSLName: "ECDHE-ECDSA-AES256-GCM-SHA384", ianaName: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        Suite(code: 0xC030, openSSLName: "ECDHE-RSA-AES256-GCM-SHA384", ianaName: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        Suite(code: 0xCCA9, openSSLName: "ECDHE-ECDSA-CHACHA20-POLY1305", ianaName: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
        Suite(code: 0xCCA8, openSSLName: "ECDHE-RSA-CHACHA20-POLY1305", ianaName: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        Suite(code: 0xC009, openSSLName: "ECDHE-ECDSA-AES128-SHA", ianaName: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"),
        Suite(code: 0xC013, openSSLName: "ECDHE-RSA-AES128-SHA", ianaName: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
        Suite(code: 0xC00A, openSSLName: "ECDHE-ECDSA-AES256-SHA", ianaName: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"),
        Suite(code: 0xC014, openSSLName: "ECDHE-RSA-AES256-SHA", ianaName: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"),
        Suite(code: 0x009C, openSSLName: "AES128-GCM-SHA256", ianaName: "TLS_RSA_WITH_AES_128_GCM_SHA256"),
        Suite(code: 0x009D, openSSLName: "AES256-GCM-SHA384", ianaName: "TLS_RSA_WITH_AES_256_GCM_SHA384"),
        Suite(code: 0x002F, openSSLName: "AES128-SHA", ianaName: "TLS_RSA_WITH_AES_128_CBC_SHA"),
        Suite(code: 0x0035, openSSLName: "AES256-SHA", ianaName: "TLS_RSA_WITH_AES_256_CBC_SHA"),
    ]

    /// Parses a list of suite names (OpenSSL or IANA spelling, any case,
    /// separated by colons, commas or white space) into their code points,
    /// in the order given, without repeats.
    public static func parse(_ text: String, file: String = "", line: Int = 0) throws(ConfigError) -> [UInt16] {
        var codes: [UInt16] = []
        let names = text.split(whereSeparator: { $0 == ":" || $0 == "," || $0 == " " || $0 == "\t" })
        for name in names {
            let wanted = name.uppercased()
            guard let suite = suites.first(where: { $0.openSSLName == wanted || $0.ianaName == wanted }) else {
                throw ConfigError(file: file, line: line, key: "smtpd_tls_cipherlist",
                                  reason: "unknown TLS 1.2 cipher suite \"\(name)\" (known: \(suites.map(\.openSSLName).joined(separator: " ")))")
            }
            if !codes.contains(suite.code) { codes.append(suite.code) }
        }
        guard !codes.isEmpty else {
            throw ConfigError(file: file, line: line, key: "smtpd_tls_cipherlist", reason: "no cipher suite named")
        }
        return codes
    }
}
