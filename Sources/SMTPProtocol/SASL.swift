import MailCore

/// What a client proved in SMTP AUTH (RFC 4954): PLAIN's three fields
/// (RFC 4616), or LOGIN's user name and password.
public struct SASLCredentials: Equatable, Sendable {
    /// The identity to act as; empty means the user itself.
    public var authorizationID: String
    public var user: String
    public var password: String

    public init(authorizationID: String = "", user: String, password: String) {
        self.authorizationID = authorizationID
        self.user = user
        self.password = password
    }

    /// PLAIN's message: `authzid NUL authcid NUL passwd`. nil when it is not
    /// three fields, a field is too long, or the user or password is empty.
    public init?(plain bytes: [UInt8]) {
        let fields = bytes.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3, fields.allSatisfy({ $0.count <= 255 }), !fields[1].isEmpty, !fields[2].isEmpty,
              let authzid = String(validating: fields[0], as: UTF8.self),
              let user = String(validating: fields[1], as: UTF8.self),
              let password = String(validating: fields[2], as: UTF8.self),
              !password.contains("\u{0}") else { return nil }
        self.init(authorizationID: authzid, user: user, password: password)
    }

    /// The PLAIN message for these credentials.
    public var plain: [UInt8] {
        Array(authorizationID.utf8) + [0] + Array(user.utf8) + [0] + Array(password.utf8)
    }
}

/// Base64 (RFC 4648) for SASL exchanges: strict decoding, no line breaks.
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i], b1 = i + 1 < bytes.count ? bytes[i + 1] : 0, b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// nil for anything that is not canonical base64.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(input.count / 4 * 3)
        var i = 0
        while i < input.count {
            var values: [UInt8] = []
            var padding = 0
            for k in 0..<4 {
                let c = input[i + k]
                if c == UInt8(ascii: "=") {
                    guard i + 4 == input.count, k >= 2 else { return nil }
                    padding += 1
                    values.append(0)
                    continue
                }
                guard padding == 0, let v = value(c) else { return nil }
                values.append(v)
            }
            out.append(values[0] << 2 | values[1] >> 4)
            if padding < 2 { out.append(values[1] << 4 | values[2] >> 2) }
            if padding < 1 { out.append(values[2] << 6 | values[3]) }
            i += 4
        }
        return out
    }

    static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}

/// The client side of Dovecot's authentication protocol (version 1.2), as
/// Postfix speaks it for `smtpd_sasl_type = dovecot`: a handshake, then one
/// `AUTH` request and its `OK` or `FAIL`. Lines are TAB-separated fields;
/// values are escaped so that no TAB or newline of a user's input reaches
/// the wire as such.
public enum DovecotAuth {
    /// What the client says first.
    public static func hello(pid: Int) -> String {
        "VERSION\t1\t1\nCPID\t\(pid)\n"
    }

    /// One PLAIN request. `secured` tells Dovecot the session is under TLS.
    public static func request(id: Int, credentials: SASLCredentials, clientAddress: String, localAddress: String,
                               secured: Bool) -> String {
        var fields = ["AUTH", String(id), "PLAIN", "service=smtp", "nologin"]
        if !localAddress.isEmpty { fields.append("lip=" + escape(localAddress)) }
        if !clientAddress.isEmpty { fields.append("rip=" + escape(clientAddress)) }
        if secured { fields.append("secured") }
        fields.append("resp=" + Base64.encode(credentials.plain))
        return fields.joined(separator: "\t") + "\n"
    }

    public enum Reply: Equatable, Sendable {
        /// The server's handshake is complete (`DONE`).
        case handshakeDone
        /// A handshake line of no interest here (VERSION, MECH, SPID...).
        case handshake
        /// `OK id user=NAME`: the user Dovecot names (it may canonicalize).
        case ok(id: Int, user: String)
        /// `FAIL id [reason=...] [temp]`.
        case fail(id: Int, reason: String, temporary: Bool)
        /// `CONT`: a mechanism that wants more than PLAIN sends (unexpected).
        case cont(id: Int)
        /// A major version this client does not speak.
        case incompatible(String)
    }

    /// One line from the server, without its newline.
    public static func parse(_ line: String) -> Reply? {
        let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        guard let kind = fields.first else { return nil }
        func parameter(_ name: String) -> String? {
            fields.dropFirst(2).first { $0 == name || $0.hasPrefix(name + "=") }.map {
                $0.contains("=") ? unescape(String($0.split(separator: "=", maxSplits: 1)[1])) : ""
            }
        }
        switch kind {
        case "VERSION":
            guard fields.count >= 2 else { return nil }
            return fields[1] == "1" ? .handshake : .incompatible(line)
        case "MECH", "SPID", "CUID", "COOKIE":
            return .handshake
        case "DONE":
            return .handshakeDone
        case "OK":
            guard fields.count >= 2, let id = Int(fields[1]) else { return nil }
            return .ok(id: id, user: parameter("user") ?? "")
        case "FAIL":
            guard fields.count >= 2, let id = Int(fields[1]) else { return nil }
            return .fail(id: id, reason: parameter("reason") ?? "", temporary: parameter("temp") != nil)
        case "CONT":
            guard fields.count >= 2, let id = Int(fields[1]) else { return nil }
            return .cont(id: id)
        default:
            return nil
        }
    }

    /// Dovecot's escaping (str_tabescape): \x01 as \x011, TAB as \x01t,
    /// LF as \x01n, CR as \x01r.
    public static func escape(_ text: String) -> String {
        var out = ""
        for ch in text.unicodeScalars {
            switch ch {
            case "\u{1}": out += "\u{1}1"
            case "\t": out += "\u{1}t"
            case "\n": out += "\u{1}n"
            case "\r": out += "\u{1}r"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    public static func unescape(_ text: String) -> String {
        var out = ""
        var escaped = false
        for ch in text.unicodeScalars {
            if escaped {
                switch ch {
                case "1": out += "\u{1}"
                case "t": out += "\t"
                case "n": out += "\n"
                case "r": out += "\r"
                default: out.unicodeScalars.append(ch)
                }
                escaped = false
            } else if ch == "\u{1}" {
                escaped = true
            } else {
                out.unicodeScalars.append(ch)
            }
        }
        return out
    }
}
