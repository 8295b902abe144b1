#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig
import Testing
@testable import SendmailMC

/// Debian's stock sendmail.mc and the tutorial's edit of it (Fixtures/README.md),
/// translated and compared with the expected hikyaku.conf fragments.
@Suite("sendmail.mc fixtures")
struct SendmailMCFixtureTests {
    static let directory: String = {
        let file = #filePath
        return String(file[..<file.lastIndex(of: "/")!]) + "/Fixtures"
    }()

    static func read(_ name: String) -> String? {
        guard let f = fopen(directory + "/" + name, "r") else { return nil }
        defer { fclose(f) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Debian creates the two files its sendmail.mc includes empty.
    static func debianIncludes(_ path: String) -> Result<String, MCIncludeFailure> {
        ["/etc/mail/m4/dialup.m4", "/etc/mail/m4/provider.m4"].contains(path)
            ? .success("") : .failure(MCIncludeFailure("No such file or directory"))
    }

    func translation(_ name: String) throws -> MCTranslation {
        let text = try #require(Self.read(name + ".mc"))
        return try SendmailMCImporter.translate(text, file: "/etc/mail/sendmail.mc", includes: Self.debianIncludes)
    }

    /// HIKYAKU_UPDATE_GOLDEN=1 writes the golden files anew (review the diff).
    static func write(_ name: String, _ text: String) {
        guard let f = fopen(directory + "/" + name, "w") else { return }
        _ = Array(text.utf8).withUnsafeBytes { fwrite($0.baseAddress!, 1, $0.count, f) }
        fclose(f)
    }

    @Test("the output is the golden file", arguments: ["debian-sendmail", "tutorial-sendmail"])
    func golden(name: String) throws {
        let got = try translation(name).rendered()
        if getenv("HIKYAKU_UPDATE_GOLDEN") != nil { Self.write(name + ".conf", got) }
        let want = try #require(Self.read(name + ".conf"), "Fixtures/\(name).conf is missing; the output is:\n\(got)")
        let gotLines = got.split(separator: "\n", omittingEmptySubsequences: false)
        let wantLines = want.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, (g, w)) in zip(gotLines, wantLines).enumerated() where g != w {
            Issue.record("line \(index + 1): got\n\(g)\nwant\n\(w)")
            break
        }
        #expect(gotLines.count == wantLines.count, "the output is:\n\(got)")
    }

    @Test("Debian's stock file: loopback ports, Debian's maps and checks, masquerading")
    func debian() throws {
        let translation = try translation("debian-sendmail")
        let config = try Configuration(text: translation.rendered(), path: "imported.conf")
        #expect(config.unknownKeys.isEmpty)
        #expect(config.list("smtpd_listen") == ["127.0.0.1:25"])
        #expect(config.list("submission_listen") == ["127.0.0.1:587"])
        #expect(config.list("smtps_listen") == [])
        #expect(config.string("access_map") == "/etc/mail/access")
        #expect(config.string("local_host_names_file") == "/etc/mail/local-host-names")
        #expect(config.boolean("smtpd_delay_checks"))
        #expect(config.seconds("smtpd_greet_pause") == 1)
        #expect(config.string("myorigin") == "mail.example.jp")
        #expect(config.boolean("disable_vrfy_command") == false)
        #expect(translation.setting.keys.sorted() == [
            "access_map", "local_host_names_file", "myorigin", "smtpd_delay_checks", "smtpd_greet_pause",
            "smtpd_listen", "submission_listen",
        ])
        // What sendmail does that hikyaku will not: Debian's throttles and
        // two of its privacy flags.
        let changing = translation.untranslated.filter(\.changesBehaviour)
        #expect(changing.map { $0.origin.source?.line ?? 0 } == [62, 62, 66, 85, 88, 89])
        #expect(translation.exitStatus == 1)
    }

    @Test("the tutorial's edit: every IPv4 address, port 25 only")
    func tutorial() throws {
        let translation = try translation("tutorial-sendmail")
        let config = try Configuration(text: translation.rendered(), path: "imported.conf")
        #expect(config.unknownKeys.isEmpty)
        #expect(config.list("smtpd_listen") == ["0.0.0.0:25"])
        #expect(config.list("submission_listen") == [])
        let listen = try #require(translation.settings.first { $0.key == "smtpd_listen" })
        #expect(listen.origins.map(\.source) == [nil])
        #expect(listen.origins.first?.text.contains("no DAEMON_OPTIONS") == true)
        #expect(config.boolean("smtpd_delay_checks"))
        #expect(config.string("myorigin") == "mail.example.jp")
    }

    @Test("without the included files the import says so")
    func missingIncludes() throws {
        let text = try #require(Self.read("debian-sendmail.mc"))
        let translation = try SendmailMCImporter.translate(text, file: "/etc/mail/sendmail.mc")
        let includes = translation.untranslated.filter { $0.origin.text.hasPrefix("include(`/etc/mail/m4/") }
        #expect(includes.count == 2)
        #expect(includes.allSatisfy { $0.changesBehaviour && $0.reason.hasPrefix("cannot read /etc/mail/m4/") })
    }
}
