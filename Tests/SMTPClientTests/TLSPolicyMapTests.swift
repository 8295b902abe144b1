#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig
import Testing
@testable import SMTPClient
import SMTPProtocol

@Suite("TLS policy map")
struct TLSPolicyMapTests {
    func map(_ text: String) throws(ConfigError) -> TLSPolicyMap {
        let path = "/tmp/hikyaku-tls-policy-\(getpid())-\(text.hashValue)"
        let file = fopen(path, "w")!
        fputs(text, file)
        fclose(file)
        defer { unlink(path) }
        return try TLSPolicyMap(path: path)
    }

    @Test("exact host fields, domains, and .parent entries for subdomains")
    func lookup() throws {
        let policies = try map("# comment\nexample.org encrypt\n.example.net   may\n[relay.example.com]:587 none # relay\n")
        #expect(policies.level(for: "example.org") == .encrypt)
        #expect(policies.level(for: "EXAMPLE.org:2525") == .encrypt)
        #expect(policies.level(for: "sub.example.org") == nil)
        #expect(policies.level(for: "a.b.example.net") == .may)
        #expect(policies.level(for: "example.net") == nil)
        #expect(policies.level(for: "[relay.example.com]:587") == SMTPClientSession.TLSPolicy.none)
        #expect(policies.level(for: "[relay.example.com]") == nil)
    }

    @Test("a bad line names the file and line")
    func badLine() {
        #expect(throws: (any Error).self) { try map("example.org encrypt\nexample.net\n") }
        do {
            _ = try map("ok.example may\nbad.example sometimes\n")
            Issue.record("no error")
        } catch {
            #expect(error.line == 2 && error.reason.contains("bad.example sometimes"))
        }
    }
}
