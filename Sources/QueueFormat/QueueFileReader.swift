import MailCore

/// Why a queue file was refused. Any of these sends the file to `corrupt/`.
public enum QueueFileError: Error, Equatable, Sendable {
    case badMagic
    case truncated
    case unexpectedRecord(type: UInt8, offset: Int)
    case recordTooLarge(offset: Int)
    case badRecord(offset: Int)
    case missingSender
    case missingRecipients
    case lengthMismatch
    case checksumMismatch
}

/// Parses and verifies queue files.
public enum QueueFileReader {
    /// Parses the envelope and verifies the whole file against its end record.
    /// `bytes` is the entire file.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(QueueFileError) -> QueueEnvelope {
        let (envelope, statusOffsets) = try parseEnvelope(bytes)
        let total = bytes.count
        guard total >= envelope.contentOffset + QueueFileConstants.endRecordSize else { throw .truncated }
        let endOffset = total - QueueFileConstants.endRecordSize
        guard bytes[endOffset] == QueueRecordType.end.rawValue,
              readUInt32(bytes, endOffset + 1) == 12 else { throw .truncated }
        let contentLength = Int(readUInt64(bytes, endOffset + 5))
        guard contentLength == endOffset - envelope.contentOffset else { throw .lengthMismatch }
        let expected = readUInt32(bytes, endOffset + 13)

        var crc = CRC32C()
        var previous = 0
        for offset in statusOffsets {
            crc.update(UnsafeRawBufferPointer(rebasing: bytes[previous..<offset]))
            crc.update(CollectionOfOne(UInt8(0)))
            previous = offset + 1
        }
        crc.update(UnsafeRawBufferPointer(rebasing: bytes[previous..<endOffset]))
        guard crc.finalValue == expected else { throw .checksumMismatch }

        var result = envelope
        result.contentLength = contentLength
        return result
    }

    public static func parse(_ bytes: [UInt8]) throws(QueueFileError) -> QueueEnvelope {
        do {
            return try bytes.withUnsafeBytes { buffer in try parse(buffer) }
        } catch let error as QueueFileError {
            throw error
        } catch {
            fatalError("unreachable")
        }
    }

    /// Parses the envelope records only (no checksum), giving the content
    /// offset. Used where only the envelope is needed.
    public static func parseEnvelope(_ bytes: UnsafeRawBufferPointer) throws(QueueFileError) -> (QueueEnvelope, [Int]) {
        let magic = QueueFileConstants.magic
        guard bytes.count >= magic.count else { throw .truncated }
        guard zip(bytes.prefix(magic.count - 1), magic).allSatisfy({ $0 == $1 }),
              QueueFileConstants.readableVersions.contains(bytes[magic.count - 1]) else { throw .badMagic }
        let version = bytes[magic.count - 1]
        var i = magic.count
        var previousWasRecipient = false
        var envelope = QueueEnvelope(arrivalSeconds: 0, sender: "", recipients: [])
        var sawArrival = false, sawSender = false
        var statusOffsets: [Int] = []
        while true {
            guard i + 5 <= bytes.count else { throw .truncated }
            let type = bytes[i]
            let length = Int(readUInt32(bytes, i + 1))
            guard length <= QueueFileConstants.maximumEnvelopeRecord else { throw .recordTooLarge(offset: i) }
            guard i + 5 + length <= bytes.count else { throw .truncated }
            let payload = UnsafeRawBufferPointer(rebasing: bytes[(i + 5)..<(i + 5 + length)])
            guard let recordType = QueueRecordType(rawValue: type) else { throw .unexpectedRecord(type: type, offset: i) }
            switch recordType {
            case .arrival:
                guard !sawArrival, i == magic.count, length == 12 else { throw .unexpectedRecord(type: type, offset: i) }
                envelope.arrivalSeconds = Int(readUInt64(payload, 0))
                envelope.arrivalMicroseconds = Int(readUInt32(payload, 8))
                sawArrival = true
            case .sender:
                guard sawArrival, !sawSender else { throw .unexpectedRecord(type: type, offset: i) }
                envelope.sender = String(decoding: payload, as: UTF8.self)
                sawSender = true
            case .info:
                guard sawSender, envelope.recipients.isEmpty else { throw .unexpectedRecord(type: type, offset: i) }
                guard let nul = payload.firstIndex(of: 0) else { throw .badRecord(offset: i) }
                let key = String(decoding: UnsafeRawBufferPointer(rebasing: payload[..<nul]), as: UTF8.self)
                let value = String(decoding: UnsafeRawBufferPointer(rebasing: payload[(nul + 1)...]), as: UTF8.self)
                envelope.info[key] = value
            case .recipient:
                guard sawSender, length >= 4 else { throw .badRecord(offset: i) }
                let addressLength = Int(payload[2]) << 8 | Int(payload[3])
                guard 4 + addressLength <= length, addressLength > 0 else { throw .badRecord(offset: i) }
                guard let status = RecipientStatus(rawValue: payload[0]) else { throw .badRecord(offset: i) }
                let address = String(decoding: UnsafeRawBufferPointer(rebasing: payload[4..<(4 + addressLength)]), as: UTF8.self)
                let original = String(decoding: UnsafeRawBufferPointer(rebasing: payload[(4 + addressLength)...]), as: UTF8.self)
                let statusOffset = i + QueueFileConstants.recipientStatusOffset
                envelope.recipients.append(QueueRecipient(address: address, originalRecipient: original, status: status,
                                                          notify: payload[1], statusOffset: statusOffset))
                statusOffsets.append(statusOffset)
            case .recipientAttribute:
                // Version 2 only, right after its recipient or another of its
                // attributes, each key once.
                guard version >= 2, previousWasRecipient else { throw .unexpectedRecord(type: type, offset: i) }
                guard let nul = payload.firstIndex(of: 0), nul > 0 else { throw .badRecord(offset: i) }
                let key = String(decoding: UnsafeRawBufferPointer(rebasing: payload[..<nul]), as: UTF8.self)
                let value = String(decoding: UnsafeRawBufferPointer(rebasing: payload[(nul + 1)...]), as: UTF8.self)
                let last = envelope.recipients.count - 1
                if key == QueueRecipientAttributeKey.orcpt.rawValue {
                    guard envelope.recipients[last].orcpt.isEmpty, OriginalRecipient(stored: value) != nil else {
                        throw .badRecord(offset: i)
                    }
                    envelope.recipients[last].orcpt = value
                } else {
                    guard envelope.recipients[last].attributes[key] == nil else { throw .badRecord(offset: i) }
                    envelope.recipients[last].attributes[key] = value
                }
            case .contentMarker:
                guard sawSender else { throw .missingSender }
                guard !envelope.recipients.isEmpty else { throw .missingRecipients }
                guard length == 0 else { throw .badRecord(offset: i) }
                envelope.contentOffset = i + 5
                return (envelope, statusOffsets)
            case .end:
                throw .unexpectedRecord(type: type, offset: i)
            }
            previousWasRecipient = recordType == .recipient || recordType == .recipientAttribute
            i += 5 + length
        }
    }

    static func readUInt32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    static func readUInt64(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(readUInt32(b, at)) << 32 | UInt64(readUInt32(b, at + 4))
    }
}
