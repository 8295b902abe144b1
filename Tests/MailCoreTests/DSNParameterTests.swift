import Testing
@testable import MailCore

@Suite("RFC 3461 parameters")
struct DSNParameterTests {
    static let xtextCases: [(String, [UInt8]?)] = [
        ("jun+40example.jp", Array("jun@example.jp".utf8)),
        ("a+2Bb+3Dc", Array("a+b=c".utf8)),
        ("lower+2bcase", Array("lower+case".utf8)),
        ("", []),
        ("+00", [0]),
        ("a+2", nil),
        ("a+", nil),
        ("a+G1", nil),
        ("a=b", nil),
        ("a b", nil),
        ("caf\u{E9}", nil),
    ]

    @Test("xtext decodes +HH and refuses what is not xtext", arguments: xtextCases)
    func decode(text: String, expected: [UInt8]?) {
        #expect(XText.decode(text) == expected)
    }

    @Test("xtext encoding escapes +, =, spaces, controls and non-ASCII, and decodes back")
    func encode() {
        let text = "a+b=c d\u{1}é~!"
        let encoded = XText.encode(text)
        #expect(encoded == "a+2Bb+3Dc+20d+01+C3+A9~!")
        #expect(XText.decode(encoded) == Array(text.utf8))
    }

    static let notifyCases: [(String, DSNNotify?)] = [
        ("NEVER", DSNNotify.never),
        ("never", DSNNotify.never),
        ("SUCCESS", DSNNotify.success),
        ("Failure,Delay", DSNNotify([.failure, .delay])),
        ("DELAY,SUCCESS,FAILURE", DSNNotify([.success, .failure, .delay])),
        ("SUCCESS,SUCCESS", DSNNotify.success),
        ("NEVER,SUCCESS", nil),
        ("NEVER,NEVER", DSNNotify.never),
        ("", nil),
        ("SUCCESS,", nil),
        ("SUCCESS, FAILURE", nil),
        ("ALWAYS", nil),
    ]

    @Test("NOTIFY lists", arguments: notifyCases)
    func notifyParameter(text: String, expected: DSNNotify?) {
        #expect(DSNNotify(parameter: text) == expected)
    }

    @Test("sendmail -N allows spaces; the description is RFC order")
    func notifyOption() {
        #expect(DSNNotify(option: " failure , delay ") == [.failure, .delay])
        #expect(DSNNotify(option: "never, success") == nil)
        #expect(DSNNotify([.delay, .success]).description == "SUCCESS,DELAY")
        #expect(DSNNotify.never.description == "NEVER")
        #expect(DSNNotify().description == "")
    }

    @Test("which reports each NOTIFY asks for")
    func wants() {
        let none = DSNNotify()
        #expect(none.wants(.failure) && none.wants(.delay) && !none.wants(.success))
        #expect(!DSNNotify.never.wants(.failure) && !DSNNotify.never.wants(.delay) && !DSNNotify.never.wants(.success))
        let success = DSNNotify.success
        #expect(success.wants(.success) && !success.wants(.failure) && !success.wants(.delay))
        let failure = DSNNotify.failure
        #expect(failure.wants(.failure) && !failure.wants(.delay))
    }

    @Test("expansion drops SUCCESS; SUCCESS alone becomes NEVER")
    func inheritance() {
        #expect(DSNNotify([.success, .failure]).inheritedByExpansion == .failure)
        #expect(DSNNotify.success.inheritedByExpansion == .never)
        #expect(DSNNotify().inheritedByExpansion == [])
        #expect(DSNNotify.never.inheritedByExpansion == .never)
        let orcpt = OriginalRecipient(addressType: "rfc822", address: "a@x.org")
        #expect(RecipientDSN(notify: .success, originalRecipient: orcpt).inheritedByExpansion
            == RecipientDSN(notify: .never, originalRecipient: orcpt))
    }

    @Test("stored notify bytes are checked")
    func validity() {
        #expect(DSNNotify(rawValue: 7).isValid)
        #expect(DSNNotify(rawValue: 8).isValid)
        #expect(!DSNNotify(rawValue: 9).isValid)
        #expect(!DSNNotify(rawValue: 16).isValid)
    }

    @Test("ORCPT: parameter, stored and outgoing forms")
    func originalRecipient() throws {
        let parsed = try #require(OriginalRecipient(parameter: "rfc822;jun+2Bml+40example.jp"))
        #expect(parsed.addressType == "rfc822" && parsed.address == "jun+ml@example.jp")
        #expect(parsed.stored == "rfc822;jun+ml@example.jp")
        #expect(parsed.parameter == "rfc822;jun+2Bml@example.jp")
        #expect(parsed.description == "rfc822; jun+ml@example.jp")
        #expect(OriginalRecipient(stored: parsed.stored) == parsed)
        #expect(OriginalRecipient(stored: "rfc822;a;b") == OriginalRecipient(addressType: "rfc822", address: "a;b"))
        #expect(OriginalRecipient(stored: "rfc822;a\nb") == nil)
        #expect(OriginalRecipient(stored: "no-type") == nil)
        #expect(OriginalRecipient(parameter: "x400;" + String(repeating: "o", count: 500)) != nil)
        #expect(OriginalRecipient(parameter: "x400;" + String(repeating: "o", count: 501)) == nil)
    }

    @Test("RET and ENVID")
    func retAndEnvid() {
        #expect(DSNReturn(parameter: "hdrs") == .headers && DSNReturn(parameter: "FULL") == .full)
        #expect(DSNReturn(parameter: "BODY") == nil)
        #expect(DSNEnvelopeID.parse(parameter: "id+20with+20spaces") == "id with spaces")
        #expect(DSNEnvelopeID.parse(parameter: "") == nil)
        #expect(DSNEnvelopeID.validated("line\nbreak") == nil)
        #expect(DSNEnvelopeID.validated(String(repeating: "x", count: 100)) != nil)
        #expect(DSNEnvelopeID.validated(String(repeating: "x", count: 101)) == nil)
    }
}
