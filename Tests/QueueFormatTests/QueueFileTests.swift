import Testing
@testable import QueueFormat

@Suite("Queue files")
struct QueueFileTests {
    static func sample() -> (QueueEnvelope, [UInt8]) {
        var envelope = QueueEnvelope(arrivalSeconds: 1_800_000_000, arrivalMicroseconds: 42, sender: "a@example.org",
                                     recipients: [QueueRecipient(address: "b@example.jp"),
                                                  QueueRecipient(address: "c@example.jp", originalRecipient: "team@example.jp")])
        envelope[info: .clientAddress] = "127.0.0.1"
        envelope[info: .origin] = "smtp"
        var writer = QueueFileWriter()
        var bytes = writer.envelope(envelope)
        let content = Array("Subject: x\n\nbody\n".utf8)
        writer.content(Array(content[..<5]))
        writer.content(Array(content[5...]))
        bytes += content
        bytes += writer.end()
        return (envelope, bytes)
    }

    @Test("what is written reads back, with the content's place")
    func roundTrip() throws {
        let (envelope, bytes) = Self.sample()
        let parsed = try QueueFileReader.parse(bytes)
        #expect(parsed.sender == envelope.sender)
        #expect(parsed.arrivalSeconds == 1_800_000_000 && parsed.arrivalMicroseconds == 42)
        #expect(parsed.recipients.map(\.address) == ["b@example.jp", "c@example.jp"])
        #expect(parsed.recipients[1].originalRecipient == "team@example.jp")
        #expect(parsed[info: .clientAddress] == "127.0.0.1")
        #expect(Array(bytes[parsed.contentOffset..<(parsed.contentOffset + parsed.contentLength)]) == Array("Subject: x\n\nbody\n".utf8))
    }

    @Test("status bytes change in place without breaking the checksum")
    func statusInPlace() throws {
        var (_, bytes) = Self.sample()
        let parsed = try QueueFileReader.parse(bytes)
        bytes[parsed.recipients[0].statusOffset] = RecipientStatus.delivered.rawValue
        let again = try QueueFileReader.parse(bytes)
        #expect(again.recipients[0].status == .delivered)
        #expect(again.pendingRecipients.map(\.address) == ["c@example.jp"])
    }

    @Test("a torn file is detected wherever it was cut")
    func torn() {
        let (_, bytes) = Self.sample()
        for length in 0..<bytes.count {
            #expect(throws: QueueFileError.self) { try QueueFileReader.parse(Array(bytes[..<length])) }
        }
    }

    @Test("any flipped bit outside the status bytes is detected")
    func corrupt() throws {
        let (_, bytes) = Self.sample()
        let statuses = Set(try QueueFileReader.parse(bytes).recipients.map(\.statusOffset))
        for offset in 0..<bytes.count where !statuses.contains(offset) {
            var damaged = bytes
            damaged[offset] ^= 0x10
            #expect(throws: QueueFileError.self) { try QueueFileReader.parse(damaged) }
        }
    }

    @Test("an unknown status value is refused")
    func badStatus() throws {
        var (_, bytes) = Self.sample()
        let parsed = try QueueFileReader.parse(bytes)
        bytes[parsed.recipients[0].statusOffset] = 99
        #expect(throws: QueueFileError.badRecord(offset: parsed.recipients[0].statusOffset - 5)) { try QueueFileReader.parse(bytes) }
    }

    @Test("CRC-32C check value")
    func crc() {
        var crc = CRC32C()
        crc.update(Array("123456789".utf8))
        #expect(crc.finalValue == 0xE306_9283)
    }
}
