/// Where a map entry came from, so every decision can name the file and
/// line that made it (sendmail never says; we do).
public struct MapHit: Sendable, Equatable, CustomStringConvertible {
    public var map: String
    public var key: String
    public var value: String
    /// The file the map was read from: the text source, or the compiled .db.
    public var path: String
    /// The line in the text source; 0 when the entry came from a .db file.
    public var line: Int

    public init(map: String, key: String, value: String, path: String, line: Int) {
        self.map = map
        self.key = key
        self.value = value
        self.path = path
        self.line = line
    }

    public var location: String { line > 0 ? "\(path):\(line)" : path }

    public var description: String { "\(map) \(location): \(key) \(value)" }
}

/// One map in memory: keys (lower-cased, as makemap stores them) to values.
public struct MapTable: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var value: String
        public var line: Int

        public init(value: String, line: Int) {
            self.value = value
            self.line = line
        }
    }

    public let name: String
    public let path: String
    public private(set) var entries: [String: Entry]
    /// Keys are compared in lower case (makemap folds them unless -f).
    public let foldsCase: Bool

    public init(name: String, path: String, entries: [String: Entry] = [:], foldsCase: Bool = true) {
        self.name = name
        self.path = path
        self.entries = entries
        self.foldsCase = foldsCase
    }

    public static func empty(_ name: String) -> MapTable { MapTable(name: name, path: "") }

    public var isEmpty: Bool { entries.isEmpty }

    public func lookup(_ key: String) -> MapHit? {
        let k = foldsCase ? key.lowercasedASCII : key
        guard let entry = entries[k] else { return nil }
        return MapHit(map: name, key: k, value: entry.value, path: path, line: entry.line)
    }
}

extension StringProtocol {
    var lowercasedASCII: String {
        String(decoding: utf8.map { ($0 >= 0x41 && $0 <= 0x5a) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}
