import Testing
import HikyakuConfig
@testable import Master

@Suite("the master's service table")
struct ServiceTableTests {
    func configuration(_ text: String) throws -> Configuration {
        try Configuration(text: text, path: "/etc/hikyaku/hikyaku.conf")
    }

    @Test("smtpd listens where the configuration says, with each listener's role")
    func configured() throws {
        let config = try configuration("""
        smtpd_listen = 127.0.0.1:25, [::1]:25
        submission_listen = 0.0.0.0:587

        """)
        let smtpd = try #require(ServiceDefinition.table(for: config).last)
        #expect(smtpd.program == "smtpd")
        #expect(smtpd.listeners == [.tcp("127.0.0.1:25"), .tcp("[::1]:25"), .tcp("0.0.0.0:587")])
        #expect(smtpd.listenerRoles == ["smtp", "smtp", "submission"])
    }

    @Test("sockets from socket activation replace the configured addresses of their role only")
    func inherited() throws {
        let config = try configuration("""
        smtpd_listen = 127.0.0.1:25
        submission_listen = 127.0.0.1:587

        """)
        let smtpd = try #require(ServiceDefinition.table(for: config, inherited: [("smtp", "0.0.0.0:2525")]).last)
        #expect(smtpd.listeners == [.tcp("0.0.0.0:2525"), .tcp("127.0.0.1:587")])
        #expect(smtpd.listenerRoles == ["smtp", "submission"])
        let both = try #require(ServiceDefinition.table(
            for: config, inherited: [("submission", "[::]:587"), ("smtps", "[::]:465")]).last)
        #expect(both.listeners == [.tcp("127.0.0.1:25"), .tcp("[::]:587"), .tcp("[::]:465")])
        #expect(both.listenerRoles == ["smtp", "submission", "smtps"])
    }
}
