/// Builds the bytes of a queue file in order: envelope, content, end record.
/// Pure: the caller writes what it returns. The checksum and content length
/// are tracked as the bytes go by.
public struct QueueFileWriter: Sendable {
    var crc = CRC32C()
    public private(set) var bytesProduced = 0
    public private(set) var contentLength = 0
    var inContent = false

    public init() {}

    /// Magic and envelope records, through the content marker.
    public mutating func envelope(_ envelope: QueueEnvelope) -> [UInt8] {
        precondition(!inContent && bytesProduced == 0, "envelope written once, first")
        var out = QueueFileConstants.magic
        var arrival: [UInt8] = []
        arrival.appendBigEndian(UInt64(envelope.arrivalSeconds))
        arrival.appendBigEndian(UInt32(envelope.arrivalMicroseconds))
        Self.appendRecord(.arrival, arrival, to: &out)
        Self.appendRecord(.sender, Array(envelope.sender.utf8), to: &out)
        for key in envelope.info.keys.sorted() {
            Self.appendRecord(.info, Array(key.utf8) + [0] + Array(envelope.info[key]!.utf8), to: &out)
        }
        for recipient in envelope.recipients {
            var payload: [UInt8] = [recipient.status.rawValue, recipient.notify]
            let address = Array(recipient.address.utf8)
            payload.appendBigEndian(UInt16(address.count))
            payload += address
            payload += Array(recipient.originalRecipient.utf8)
            Self.appendRecord(.recipient, payload, to: &out)
            var attributes = recipient.attributes
            if !recipient.orcpt.isEmpty { attributes[QueueRecipientAttributeKey.orcpt.rawValue] = recipient.orcpt }
            for key in attributes.keys.sorted() {
                Self.appendRecord(.recipientAttribute, Array(key.utf8) + [0] + Array(attributes[key]!.utf8), to: &out)
            }
        }
        Self.appendRecord(.contentMarker, [], to: &out)
        // Status bytes count as zero in the checksum (see QueueRecordType).
        var masked = out
        for offset in Self.statusOffsets(in: out) { masked[offset] = 0 }
        crc.update(masked)
        bytesProduced = out.count
        inContent = true
        return out
    }

    /// Records content bytes that the caller writes right after the envelope.
    public mutating func content(_ bytes: UnsafeRawBufferPointer) {
        precondition(inContent)
        crc.update(bytes)
        bytesProduced += bytes.count
        contentLength += bytes.count
    }

    public mutating func content(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { content($0) }
    }

    /// The end record; after it the file is complete.
    public mutating func end() -> [UInt8] {
        precondition(inContent)
        inContent = false
        var payload: [UInt8] = []
        payload.appendBigEndian(UInt64(contentLength))
        payload.appendBigEndian(crc.finalValue)
        var out: [UInt8] = []
        Self.appendRecord(.end, payload, to: &out)
        bytesProduced += out.count
        return out
    }

    static func appendRecord(_ type: QueueRecordType, _ payload: [UInt8], to out: inout [UInt8]) {
        out.append(type.rawValue)
        out.appendBigEndian(UInt32(payload.count))
        out += payload
    }

    /// Offsets of recipient status bytes in an envelope byte sequence.
    static func statusOffsets(in envelope: [UInt8]) -> [Int] {
        var offsets: [Int] = []
        var i = QueueFileConstants.magic.count
        while i + 5 <= envelope.count {
            let type = envelope[i]
            let length = Int(envelope.readBigEndianUInt32(at: i + 1))
            if type == QueueRecordType.recipient.rawValue { offsets.append(i + QueueFileConstants.recipientStatusOffset) }
            i += 5 + length
        }
        return offsets
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        var v = value.bigEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }

    func readBigEndianUInt32(at offset: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 8 | UInt32(self[offset + k]) }
        return v
    }
}
