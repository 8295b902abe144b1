/// The one request/response codec between hikyaku's programs.
///
///     frame     = length:4 version:1 type:2 *attribute     (big-endian)
///     attribute = key:2 value-length:4 value
///
/// `length` counts every byte after itself. Values are bytes (UTF-8 text or
/// big-endian integers); an attribute may repeat (one per recipient). Nothing
/// is quoted or escaped. A frame over ``maximumFrameSize`` or of another
/// version is refused, so a confused or hostile peer cannot make a reader
/// allocate without bound.
public struct IPCFrame: Equatable, Sendable {
    public static let version: UInt8 = 1
    public static let maximumFrameSize = 1 << 20
    /// Content is streamed in pieces no larger than this.
    public static let maximumChunk = 64 * 1024

    public var type: IPCMessageType
    public var attributes: [IPCAttribute]

    public init(_ type: IPCMessageType, _ attributes: [IPCAttribute] = []) {
        self.type = type
        self.attributes = attributes
    }

    // MARK: Building

    public mutating func add(_ key: IPCKey, _ value: String) {
        attributes.append(IPCAttribute(key: key, value: Array(value.utf8)))
    }

    public mutating func add(_ key: IPCKey, bytes: [UInt8]) {
        attributes.append(IPCAttribute(key: key, value: bytes))
    }

    public mutating func add(_ key: IPCKey, _ value: Int) {
        var bytes: [UInt8] = []
        var v = UInt64(bitPattern: Int64(value)).bigEndian
        withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
        attributes.append(IPCAttribute(key: key, value: bytes))
    }

    public mutating func add(_ key: IPCKey, _ value: Bool) {
        attributes.append(IPCAttribute(key: key, value: [value ? 1 : 0]))
    }

    // MARK: Reading

    public func bytes(_ key: IPCKey) -> [UInt8]? {
        attributes.first(where: { $0.key == key })?.value
    }

    public func string(_ key: IPCKey) -> String? {
        bytes(key).map { String(decoding: $0, as: UTF8.self) }
    }

    public func strings(_ key: IPCKey) -> [String] {
        attributes.filter { $0.key == key }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    public func int(_ key: IPCKey) -> Int? {
        guard let b = bytes(key), b.count == 8 else { return nil }
        return Self.decodeInt(b[...])
    }

    public func ints(_ key: IPCKey) -> [Int] {
        attributes.filter { $0.key == key && $0.value.count == 8 }.map { Self.decodeInt($0.value[...]) }
    }

    public func bool(_ key: IPCKey) -> Bool? {
        guard let b = bytes(key), b.count == 1 else { return nil }
        return b[0] != 0
    }

    static func decodeInt(_ b: ArraySlice<UInt8>) -> Int {
        var v: UInt64 = 0
        for byte in b { v = v << 8 | UInt64(byte) }
        return Int(Int64(bitPattern: v))
    }

    /// A required text attribute, or a protocol error naming it.
    public func require(_ key: IPCKey) throws(IPCError) -> String {
        guard let value = string(key) else { throw .missingAttribute(key: key.rawValue, type: type.rawValue) }
        return value
    }

    public func requireInt(_ key: IPCKey) throws(IPCError) -> Int {
        guard let value = int(key) else { throw .missingAttribute(key: key.rawValue, type: type.rawValue) }
        return value
    }

    // MARK: Wire form

    public func encoded() -> [UInt8] {
        var body: [UInt8] = [Self.version, UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF)]
        for attribute in attributes {
            body.append(UInt8(attribute.key.rawValue >> 8))
            body.append(UInt8(attribute.key.rawValue & 0xFF))
            let n = UInt32(attribute.value.count)
            body += [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
            body += attribute.value
        }
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)] + body
    }

    /// Decodes one frame from the start of `bytes`. Returns nil when more bytes
    /// are needed, else the frame and how many bytes it used.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(IPCError) -> (IPCFrame, Int)? {
        guard bytes.count >= 4 else { return nil }
        let length = Int(UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3]))
        guard length >= 3, length <= maximumFrameSize else { throw .badLength(length) }
        guard bytes.count >= 4 + length else { return nil }
        guard bytes[4] == version else { throw .badVersion(bytes[4]) }
        let rawType = UInt16(bytes[5]) << 8 | UInt16(bytes[6])
        guard let type = IPCMessageType(rawValue: rawType) else { throw .unknownType(rawType) }
        var attributes: [IPCAttribute] = []
        var i = 7
        let end = 4 + length
        while i < end {
            guard i + 6 <= end else { throw .truncatedAttribute }
            let rawKey = UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])
            let n = Int(UInt32(bytes[i + 2]) << 24 | UInt32(bytes[i + 3]) << 16 | UInt32(bytes[i + 4]) << 8 | UInt32(bytes[i + 5]))
            guard i + 6 + n <= end else { throw .truncatedAttribute }
            // Unknown keys are skipped: a newer peer may add attributes.
            if let key = IPCKey(rawValue: rawKey) {
                attributes.append(IPCAttribute(key: key, value: Array(UnsafeRawBufferPointer(rebasing: bytes[(i + 6)..<(i + 6 + n)]))))
            }
            i += 6 + n
        }
        return (IPCFrame(type, attributes), end)
    }

    public static func decode(_ bytes: [UInt8]) throws(IPCError) -> (IPCFrame, Int)? {
        do {
            return try bytes.withUnsafeBytes { try decode($0) }
        } catch let error as IPCError {
            throw error
        } catch {
            fatalError("unreachable")
        }
    }
}

public struct IPCAttribute: Equatable, Sendable {
    public var key: IPCKey
    public var value: [UInt8]

    public init(key: IPCKey, value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

public enum IPCError: Error, Equatable, Sendable, CustomStringConvertible {
    case badLength(Int)
    case badVersion(UInt8)
    case unknownType(UInt16)
    case truncatedAttribute
    case missingAttribute(key: UInt16, type: UInt16)
    /// An attribute whose value is not one the key allows.
    case badAttribute(key: UInt16, type: UInt16)
    case unexpectedMessage(UInt16)
    case peerClosed
    case timedOut
    case system(String)

    public var description: String {
        switch self {
        case .badLength(let n): return "bad frame length \(n)"
        case .badVersion(let v): return "unsupported protocol version \(v)"
        case .unknownType(let t): return "unknown message type \(t)"
        case .truncatedAttribute: return "truncated attribute"
        case .missingAttribute(let key, let type): return "message type \(type) lacks attribute \(key)"
        case .badAttribute(let key, let type): return "message type \(type) has a bad value for attribute \(key)"
        case .unexpectedMessage(let t): return "unexpected message type \(t)"
        case .peerClosed: return "peer closed the connection"
        case .timedOut: return "peer timed out"
        case .system(let s): return s
        }
    }
}
