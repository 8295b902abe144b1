import Testing
@testable import HikyakuConfig

@Suite("hikyaku.conf")
struct ConfigurationTests {
    @Test("no file gives every default")
    func defaults() {
        let config = Configuration.defaults(environmentDefaults: ["myhostname": "vm.example.jp"])
        #expect(config.string("myhostname") == "vm.example.jp")
        #expect(config.string("myorigin") == "vm.example.jp")
        #expect(config.string("smtpd_banner") == "vm.example.jp ESMTP hikyaku")
        #expect(config.size("message_size_limit") == 10_240_000)
        #expect(config.seconds("maximal_queue_lifetime") == 5 * 86400)
        #expect(config.list("smtpd_listen") == ["127.0.0.1:25"])
        #expect(config.boolean("disable_vrfy_command") == false)
    }

    @Test("comments, continuation lines and expansion")
    func syntax() throws {
        let text = """
        # comment
        myhostname = mx.example.jp
        smtpd_listen = 127.0.0.1:25,
            [::1]:25
        smtpd_banner = ${myhostname} $(myhostname) $$5 ESMTP
        smtpd_timeout = 5m
        disable_vrfy_command = yes

        """
        let config = try Configuration(text: text, path: "/etc/hikyaku/hikyaku.conf")
        #expect(config.list("smtpd_listen") == ["127.0.0.1:25", "[::1]:25"])
        #expect(config.string("smtpd_banner") == "mx.example.jp mx.example.jp $5 ESMTP")
        #expect(config.seconds("smtpd_timeout") == 300)
        #expect(config.boolean("disable_vrfy_command"))
        #expect(config.line(of: "smtpd_timeout") == 6)
        #expect(config.unknownKeys.isEmpty)
    }

    @Test("errors name the file, the line and the key", arguments: [
        ("a\nmessage_size_limit = big\n", ConfigError(file: "f", line: 1, key: nil, reason: "missing '=' after parameter name")),
        ("message_size_limit = big\n", ConfigError(file: "f", line: 1, key: "message_size_limit", reason: "expected a size in bytes, found 'big'")),
        ("\n  indented = x\n", ConfigError(file: "f", line: 2, key: nil, reason: "continuation line without a parameter before it")),
        ("smtpd_timeout = soon\n", ConfigError(file: "f", line: 1, key: "smtpd_timeout", reason: "expected a time like 300s, 5m, 1h or 5d, found 'soon'")),
        ("myorigin = $nosuch\n", ConfigError(file: "f", line: 1, key: "myorigin", reason: "unknown parameter $nosuch")),
        ("myorigin = $myorigin\n", ConfigError(file: "f", line: 1, key: "myorigin", reason: "recursive $parameter expansion")),
        ("Bad-Name = 1\n", ConfigError(file: "f", line: 1, key: "Bad-Name", reason: "parameter names are letters, digits and underscores")),
    ])
    func errors(text: String, expected: ConfigError) {
        #expect(throws: expected) { try Configuration(text: text, path: "f") }
    }

    @Test("unknown keys are kept for a warning, not refused")
    func unknown() throws {
        let config = try Configuration(text: "no_such_key = 1\n", path: "f")
        #expect(config.unknownKeys.map(\.key) == ["no_such_key"])
    }

    @Test("every key's default is valid for its kind")
    func table() throws {
        for parameter in ConfigParameter.all where !parameter.defaultValue.contains("$") {
            try Configuration.validate(parameter.defaultValue, as: parameter.kind, key: parameter.name, file: "t", line: 0)
        }
        #expect(Set(ConfigParameter.all.map(\.name)).count == ConfigParameter.all.count)
    }

    @Test("spool paths inside and outside the chroot")
    func spool() {
        #expect(SpoolLayout(root: "/").file(.incoming, "X") == "/incoming/X")
        #expect(SpoolLayout(root: "/var/spool/hikyaku/").socket(.cleanup) == "/var/spool/hikyaku/private/cleanup")
    }

    @Test("times: a number with an optional unit; signs, garbage and overflow are refused",
          arguments: [("300s", 300), ("5m", 300), ("1h", 3600), ("2d", 172_800), ("1w", 604_800), ("45", 45), ("0", 0)]
              + [("", nil), ("h", nil), ("5x", nil), ("two hours", nil), ("-5m", nil), ("+5", nil), ("1.5h", nil),
                 ("99999999999999999999", nil), ("9223372036854775807w", nil), ("١٢s", nil)] as [(String, Int?)])
    func times(text: String, seconds: Int?) {
        #expect(Configuration.parseTime(text) == seconds)
    }
}

@Suite("smtpd_tls_cipherlist")
struct TLSCipherListTests {
    @Test("the default names ECDHE AEAD suites only, in its order")
    func defaultList() throws {
        let config = Configuration.defaults(environmentDefaults: [:])
        let codes = try TLSCipherList.parse(config.string("smtpd_tls_cipherlist"))
        #expect(codes == [0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8])
        for code in codes {
            let name = try #require(TLSCipherList.suites.first { $0.code == code }?.openSSLName)
            #expect(name.hasPrefix("ECDHE-") && (name.contains("GCM") || name.contains("CHACHA20")), "\(name)")
        }
    }

    @Test("OpenSSL and IANA names, any case and separator; repeats dropped")
    func spellings() throws {
        #expect(try TLSCipherList.parse("ecdhe-rsa-aes128-sha, TLS_RSA_WITH_AES_256_GCM_SHA384 ECDHE-RSA-AES128-SHA")
                == [0xC013, 0x009D])
    }

    @Test("an unknown name is reported with the file, the line and the name")
    func unknown() {
        #expect(throws: ConfigError(file: "/etc/hikyaku/hikyaku.conf", line: 7, key: "smtpd_tls_cipherlist",
                                    reason: "unknown TLS 1.2 cipher suite \"HIGH\" (known: \(TLSCipherList.suites.map(\.openSSLName).joined(separator: " ")))")) {
            try TLSCipherList.parse("ECDHE-RSA-AES128-GCM-SHA256:HIGH", file: "/etc/hikyaku/hikyaku.conf", line: 7)
        }
        #expect(throws: ConfigError.self) { try TLSCipherList.parse(" : ") }
    }
}
