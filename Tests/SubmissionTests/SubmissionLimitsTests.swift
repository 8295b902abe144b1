#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Submission

@Suite("What local submission refuses up front")
struct SubmissionLimitsTests {
    @Test("message_size_limit bytes pass, one more does not; 0 means no limit")
    func size() {
        let message = Array("Subject: x\n\n".utf8) + Array(repeating: UInt8(ascii: "a"), count: 88)
        #expect(SubmissionLimits(sizeLimit: 100).check(message) == nil)
        #expect(SubmissionLimits(sizeLimit: 99).check(message) == .tooBig(size: 100, limit: 99))
        #expect(SubmissionLimits(sizeLimit: 0).check(message) == nil)
    }

    @Test("99 Received: fields pass (pickup adds the 100th); 100 do not; the body and continuations do not count")
    func hops() {
        func message(_ received: Int, body: Int = 0) -> [UInt8] {
            Array((String(repeating: "Received: from a\n\tby b\n", count: received) + "Subject: x\n\n"
                   + String(repeating: "Received: in the body\n", count: body)).utf8)
        }
        let limits = SubmissionLimits(sizeLimit: 0)
        #expect(limits.check(message(99, body: 50)) == nil)
        #expect(limits.check(message(100)) == .tooManyHops(received: 100))
        #expect(SubmissionLimits.Refusal.tooManyHops(received: 100).reply.description == "554 5.4.6 Error: too many hops")
    }

    @Test("a -c configuration from a caller other than root: root's or the caller's, and writable by its owner only")
    func configurationTrust() {
        func file(uid: uid_t, mode: mode_t, type: mode_t = S_IFREG) -> stat {
            var st = stat()
            st.st_uid = uid
            st.st_mode = type | mode
            return st
        }
        typealias Trust = MaildropWriter.ConfigurationTrust
        #expect(Trust.judge(file(uid: 0, mode: 0o644), caller: 1000) == .root)
        #expect(Trust.judge(file(uid: 1000, mode: 0o600), caller: 1000) == .caller)
        #expect(Trust.judge(file(uid: 1001, mode: 0o644), caller: 1000) == .refused("it belongs to neither root nor the caller"))
        #expect(Trust.judge(file(uid: 0, mode: 0o664), caller: 1000) == .refused("its group or others may write it"))
        #expect(Trust.judge(file(uid: 1000, mode: 0o646), caller: 1000) == .refused("its group or others may write it"))
        #expect(Trust.judge(file(uid: 0, mode: 0o644, type: S_IFIFO), caller: 1000) == .refused("not a regular file"))
    }
}
