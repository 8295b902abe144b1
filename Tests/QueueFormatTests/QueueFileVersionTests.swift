import MailCore
import Testing
@testable import QueueFormat

@Suite("Queue file version 2: DSN per recipient")
struct QueueFileVersionTests {
    static let content = Array("Subject: x\n\nbody\n".utf8)

    static func file(_ recipients: [QueueRecipient], version: UInt8 = QueueFileConstants.currentVersion) -> [UInt8] {
        var envelope = QueueEnvelope(arrivalSeconds: 1_800_000_000, sender: "a@example.org", recipients: recipients)
        envelope[info: .dsnRet] = "HDRS"
        envelope[info: .dsnEnvid] = "QQ314159"
        var writer = QueueFileWriter()
        var head = writer.envelope(envelope)
        head[3] = version
        return sealed(head)
    }

    /// Envelope bytes with the content and a correct end record after them.
    static func sealed(_ head: [UInt8]) -> [UInt8] {
        var crc = CRC32C()
        var masked = head
        for offset in QueueFileWriter.statusOffsets(in: head) { masked[offset] = 0 }
        crc.update(masked)
        crc.update(content)
        var end: [UInt8] = [0x45, 0, 0, 0, 12]
        end.appendBigEndian(UInt64(content.count))
        end.appendBigEndian(crc.finalValue)
        return head + content + end
    }

    /// The example file of docs/INTERNALS.md, written by the version 1 writer.
    static let versionOneExample: [UInt8] = [
        0x48, 0x4B, 0x51, 0x01, 0x54, 0x00, 0x00, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x6B, 0x0C, 0x13, 0xC1, 0x00, 0x03, 0xD0,
        0x90, 0x53, 0x00, 0x00, 0x00, 0x0E, 0x6A, 0x75, 0x6E, 0x40, 0x65, 0x78, 0x61, 0x6D, 0x70, 0x6C, 0x65, 0x2E, 0x6A, 0x70,
        0x49, 0x00, 0x00, 0x00, 0x18, 0x63, 0x6C, 0x69, 0x65, 0x6E, 0x74, 0x5F, 0x61, 0x64, 0x64, 0x72, 0x65, 0x73, 0x73, 0x00,
        0x31, 0x32, 0x37, 0x2E, 0x30, 0x2E, 0x30, 0x2E, 0x31, 0x49, 0x00, 0x00, 0x00, 0x15, 0x63, 0x6C, 0x69, 0x65, 0x6E, 0x74,
        0x5F, 0x6E, 0x61, 0x6D, 0x65, 0x00, 0x6C, 0x6F, 0x63, 0x61, 0x6C, 0x68, 0x6F, 0x73, 0x74, 0x49, 0x00, 0x00, 0x00, 0x1B,
        0x68, 0x65, 0x6C, 0x6F, 0x5F, 0x6E, 0x61, 0x6D, 0x65, 0x00, 0x63, 0x6C, 0x69, 0x65, 0x6E, 0x74, 0x2E, 0x65, 0x78, 0x61,
        0x6D, 0x70, 0x6C, 0x65, 0x2E, 0x6A, 0x70, 0x49, 0x00, 0x00, 0x00, 0x0B, 0x6F, 0x72, 0x69, 0x67, 0x69, 0x6E, 0x00, 0x73,
        0x6D, 0x74, 0x70, 0x49, 0x00, 0x00, 0x00, 0x13, 0x70, 0x72, 0x6F, 0x74, 0x6F, 0x63, 0x6F, 0x6C, 0x5F, 0x6E, 0x61, 0x6D,
        0x65, 0x00, 0x45, 0x53, 0x4D, 0x54, 0x50, 0x52, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x13, 0x6A, 0x75, 0x6E, 0x40,
        0x6D, 0x61, 0x69, 0x6C, 0x2E, 0x65, 0x78, 0x61, 0x6D, 0x70, 0x6C, 0x65, 0x2E, 0x6A, 0x70, 0x43, 0x00, 0x00, 0x00, 0x00,
        0x53, 0x75, 0x62, 0x6A, 0x65, 0x63, 0x74, 0x3A, 0x20, 0x68, 0x69, 0x0A, 0x0A, 0x68, 0x65, 0x6C, 0x6C, 0x6F, 0x0A, 0x45,
        0x00, 0x00, 0x00, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x13, 0x6E, 0x63, 0x2C, 0xB3,
    ]

    @Test("NOTIFY and ORCPT round-trip, next to the address before expansion")
    func roundTrip() throws {
        let bytes = Self.file([
            QueueRecipient(address: "b@example.jp", originalRecipient: "team@example.jp",
                           notify: DSNNotify([.success, .failure]).rawValue, orcpt: "rfc822;B@Example.jp"),
            QueueRecipient(address: "c@example.jp"),
            QueueRecipient(address: "d@example.jp", notify: DSNNotify.never.rawValue, attributes: ["x_future": "kept"]),
        ])
        #expect(Array(bytes[0..<4]) == [0x48, 0x4B, 0x51, 0x02])
        let parsed = try QueueFileReader.parse(bytes)
        #expect(parsed.recipients.map(\.orcpt) == ["rfc822;B@Example.jp", "", ""])
        #expect(parsed.recipients[0].originalRecipient == "team@example.jp")
        #expect(parsed.recipients[0].dsn == RecipientDSN(notify: [.success, .failure],
                                                         originalRecipient: OriginalRecipient(addressType: "rfc822", address: "B@Example.jp")))
        #expect(parsed.recipients[1].dsn == RecipientDSN())
        #expect(parsed.recipients[2].dsn.notify == .never)
        #expect(parsed.recipients[2].attributes == ["x_future": "kept"])
        #expect(parsed.dsnReturn == .headers && parsed.dsnEnvelopeID == "QQ314159")
        // Status bytes still change in place.
        var marked = bytes
        marked[parsed.recipients[1].statusOffset] = RecipientStatus.delivered.rawValue
        #expect(try QueueFileReader.parse(marked).recipients[1].status == .delivered)
    }

    @Test("a version 1 file, as the previous writer made it, still reads")
    func versionOne() throws {
        let parsed = try QueueFileReader.parse(Self.versionOneExample)
        #expect(parsed.sender == "jun@example.jp" && parsed[info: .protocolName] == "ESMTP")
        #expect(parsed.recipients.map(\.address) == ["jun@mail.example.jp"])
        #expect(parsed.recipients[0].dsn == RecipientDSN())
        #expect(parsed.dsnReturn == nil && parsed.dsnEnvelopeID == nil)
        #expect(parsed.contentLength == 19)
    }

    @Test("recipient attributes in a version 1 file, or an unknown version, are refused")
    func versions() {
        let withORCPT = Self.file([QueueRecipient(address: "b@example.jp", orcpt: "rfc822;b@example.jp")], version: 1)
        do {
            _ = try QueueFileReader.parse(withORCPT)
            Issue.record("a recipient attribute was accepted in a version 1 file")
        } catch {
            guard case .unexpectedRecord(type: 0x41, _) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
        }
        let future = Self.file([QueueRecipient(address: "b@example.jp")], version: 3)
        #expect(throws: QueueFileError.badMagic) { try QueueFileReader.parse(future) }
    }

    @Test("a recipient attribute must follow its recipient, once per key, with a valid ORCPT")
    func placement() throws {
        let good = Self.file([QueueRecipient(address: "b@example.jp", orcpt: "rfc822;b@example.jp")])
        let parsed = try QueueFileReader.parse(good)
        let recordStart = parsed.recipients[0].statusOffset - 5
        let recipientLength = Int(good.readBigEndianUInt32(at: recordStart + 1))
        let attributeStart = recordStart + 5 + recipientLength
        #expect(good[attributeStart] == 0x41)
        let attributeRecord = Array(good[attributeStart..<(parsed.contentOffset - 5)])

        let head = Array(good[..<parsed.contentOffset])
        // Twice the same key.
        var twice = Array(head[..<(parsed.contentOffset - 5)]) + attributeRecord + Array(head[(parsed.contentOffset - 5)...])
        #expect(throws: QueueFileError.badRecord(offset: attributeStart + attributeRecord.count)) { try QueueFileReader.parse(Self.sealed(twice)) }
        // Before any recipient: right after the info records.
        twice = Array(head[..<recordStart]) + attributeRecord + Array(head[recordStart..<attributeStart]) + Array(head[(parsed.contentOffset - 5)...])
        #expect(throws: QueueFileError.unexpectedRecord(type: 0x41, offset: recordStart)) { try QueueFileReader.parse(Self.sealed(twice)) }
        // An ORCPT without a type.
        var bad = head
        let value = Array("orcpt\0".utf8)
        let valueStart = attributeStart + 5 + value.count
        bad.replaceSubrange(valueStart..<(valueStart + 7), with: Array("rfc822:".utf8))
        #expect(throws: QueueFileError.badRecord(offset: attributeStart)) { try QueueFileReader.parse(Self.sealed(bad)) }
    }

    @Test("a flipped bit anywhere in a version 2 file outside the status bytes is detected")
    func corrupt() throws {
        let bytes = Self.file([QueueRecipient(address: "b@example.jp", notify: 2, orcpt: "rfc822;b@example.jp"),
                               QueueRecipient(address: "c@example.jp", orcpt: "x400;c")])
        let statuses = Set(try QueueFileReader.parse(bytes).recipients.map(\.statusOffset))
        for offset in 0..<bytes.count where !statuses.contains(offset) {
            var damaged = bytes
            damaged[offset] ^= 0x10
            #expect(throws: QueueFileError.self) { try QueueFileReader.parse(damaged) }
        }
    }
}
