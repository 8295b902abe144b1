/// The text format makemap reads (makemap(8)), with sendmail 8.17's rules:
///
/// - a line that is empty or starts with `#` (the comment character) in
///   column 1 is skipped; a `#` elsewhere is data;
/// - a line that starts with white space (or the delimiter) is a syntax error;
/// - the key runs to the first white space (or delimiter), folded to lower
///   case unless told not to; the value is the rest after the separating
///   white space, up to the newline (a CR before it is kept, as makemap keeps it);
/// - a key without a value is an error unless empty values are allowed;
/// - the last line needs no newline.
///
/// Errors do not stop the parse: the rest of the map still counts.
public struct MapSource: Sendable {
    public struct Options: Sendable {
        public var foldCase = true
        public var delimiter: UInt8? = nil
        public var allowEmptyValues = false
        public var commentCharacter: UInt8 = UInt8(ascii: "#")

        public init(foldCase: Bool = true, delimiter: UInt8? = nil, allowEmptyValues: Bool = false) {
            self.foldCase = foldCase
            self.delimiter = delimiter
            self.allowEmptyValues = allowEmptyValues
        }
    }

    public struct Line: Sendable, Equatable {
        public var key: [UInt8]
        public var value: [UInt8]
        public var number: Int
    }

    public struct Problem: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            case leadingSpace
            case noValue(key: String)
        }
        public var line: Int
        public var kind: Kind

        /// makemap's wording, after `makemap: MAPNAME: line N: `.
        public var message: String {
            switch kind {
            case .leadingSpace: return "syntax error (leading space)"
            case .noValue(let key): return "no RHS for LHS \(key)"
            }
        }
    }

    public private(set) var lines: [Line] = []
    public private(set) var problems: [Problem] = []

    public init(bytes: [UInt8], options: Options = Options()) {
        var number = 0
        var start = 0
        let n = bytes.count
        while start < n {
            var end = start
            while end < n && bytes[end] != 10 { end += 1 }
            number += 1
            parse(bytes[start..<end], number: number, options: options)
            start = end + 1
        }
    }

    public init(text: String, options: Options = Options()) {
        self.init(bytes: Array(text.utf8), options: options)
    }

    mutating func parse(_ line: ArraySlice<UInt8>, number: Int, options: Options) {
        guard let first = line.first, first != options.commentCharacter else { return }
        func isSeparator(_ c: UInt8) -> Bool {
            if let d = options.delimiter { return c == d }
            return c == 32 || c == 9 || c == 13 || c == 10 || c == 11 || c == 12
        }
        if isSeparator(first) {
            problems.append(Problem(line: number, kind: .leadingSpace))
            return
        }
        var i = line.startIndex
        var key: [UInt8] = []
        while i < line.endIndex && !isSeparator(line[i]) {
            let c = line[i]
            key.append(options.foldCase && c >= 0x41 && c <= 0x5a ? c | 0x20 : c)
            i += 1
        }
        while i < line.endIndex && isSeparator(line[i]) { i += 1 }
        let value = Array(line[i...])
        if value.isEmpty && !options.allowEmptyValues {
            problems.append(Problem(line: number, kind: .noValue(key: String(decoding: key, as: UTF8.self))))
            return
        }
        lines.append(Line(key: key, value: value, number: number))
    }

    /// The lines as a table, first definition winning (makemap without -r).
    /// Later duplicates are returned for the warning.
    public func table(name: String, path: String) -> (MapTable, duplicates: [Line]) {
        var entries: [String: MapTable.Entry] = [:]
        var duplicates: [Line] = []
        for line in lines {
            let key = String(decoding: line.key, as: UTF8.self)
            if entries[key] != nil {
                duplicates.append(line)
                continue
            }
            entries[key] = MapTable.Entry(value: String(decoding: line.value, as: UTF8.self), line: line.number)
        }
        return (MapTable(name: name, path: path, entries: entries), duplicates)
    }
}
