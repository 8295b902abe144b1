/// Makes 8-bit mail fit a server without 8BITMIME (RFC 6152 section 3):
/// every MIME body part with 8-bit content becomes quoted-printable
/// (RFC 2045 section 6.7), multiparts and attached messages are walked
/// part by part, and everything already 7-bit is left byte for byte.
/// A message without MIME headers but with an 8-bit body is labelled
/// `text/plain; charset=unknown-8bit` (RFC 1428) first.
///
/// Input and output use LF line endings, as the queue stores them. Header
/// fields with raw 8-bit text cannot be fixed without knowing their
/// charset; they are left alone, as Postfix does.
public enum MIMEDowngrade {
    /// The content converted, or unchanged when it has no 8-bit byte.
    public static func sevenBit(_ content: [UInt8]) -> [UInt8] {
        guard content.contains(where: { $0 >= 0x80 }) else { return content }
        let (headers, separator, body) = splitHeaders(content)
        let hasMIME = headers.contains { name(of: $0) == "mime-version" || name(of: $0) == "content-type" }
        if !hasMIME {
            guard body.contains(where: { $0 >= 0x80 }) else { return content }
            var out = headers.flatMap { $0 }
            out += Array("MIME-Version: 1.0\nContent-Type: text/plain; charset=unknown-8bit\nContent-Transfer-Encoding: quoted-printable\n".utf8)
            out += separator.isEmpty ? [0x0A] : separator
            out += quotedPrintable(body)
            return out
        }
        return convertEntity(headers: headers, separator: separator, body: body, defaultType: "text/plain", depth: 0)
    }

    static let maximumDepth = 50

    /// One MIME entity: its header lines (each with its LF, folded lines
    /// kept with their field) and its body.
    static func convertEntity(headers: [[UInt8]], separator: [UInt8], body: ArraySlice<UInt8>, defaultType: String, depth: Int) -> [UInt8] {
        guard body.contains(where: { $0 >= 0x80 }), depth < maximumDepth else { return headers.flatMap { $0 } + separator + body }
        let contentType = fieldValue(headers, "content-type")
        let type = contentType.map { mediaType($0) } ?? defaultType
        let encoding = fieldValue(headers, "content-transfer-encoding")?.trimmed.lowercased() ?? "7bit"
        if type.hasPrefix("multipart/"), let boundary = contentType.flatMap({ parameter($0, "boundary") }), !boundary.isEmpty {
            let childDefault = type == "multipart/digest" ? "message/rfc822" : "text/plain"
            return headers.flatMap { $0 } + separator + convertMultipart(body, boundary: boundary, childDefault: childDefault, depth: depth)
        }
        if type == "message/rfc822" && (encoding == "7bit" || encoding == "8bit" || encoding == "binary") {
            let (innerHeaders, innerSeparator, innerBody) = splitHeaders(Array(body))
            let inner = convertEntity(headers: innerHeaders, separator: innerSeparator, body: innerBody, defaultType: "text/plain", depth: depth + 1)
            return replacingEncoding(headers, with: encoding == "7bit" ? nil : "7bit") + separator + inner
        }
        guard encoding == "7bit" || encoding == "8bit" || encoding == "binary" else {
            // base64 or quoted-printable with raw 8-bit bytes is broken
            // already; sending it on unchanged is all that can be done.
            return headers.flatMap { $0 } + separator + body
        }
        return replacingEncoding(headers, with: "quoted-printable") + (separator.isEmpty ? [0x0A] : separator) + quotedPrintable(body)
    }

    /// The parts between `--boundary` lines, each converted; preamble,
    /// epilogue and delimiter lines unchanged.
    static func convertMultipart(_ body: ArraySlice<UInt8>, boundary: String, childDefault: String, depth: Int) -> [UInt8] {
        let delimiter = Array("--\(boundary)".utf8)
        var out: [UInt8] = []
        var part: [UInt8] = []
        var inPart = false
        var closed = false
        func flushPart() {
            guard inPart else { return }
            // The LF before a delimiter line belongs to the delimiter.
            var content = part
            let trailingNewline = content.last == 0x0A
            if trailingNewline { content.removeLast() }
            let (headers, separator, partBody) = splitHeaders(content)
            out += convertEntity(headers: headers, separator: separator, body: partBody, defaultType: childDefault, depth: depth + 1)
            if trailingNewline { out.append(0x0A) }
            part = []
        }
        for line in lines(body) {
            if !closed && line.starts(with: delimiter) {
                let rest = line.dropFirst(delimiter.count)
                let isClose = rest.starts(with: [0x2D, 0x2D])
                let tail = isClose ? rest.dropFirst(2) : rest
                if tail.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
                    flushPart()
                    out += line
                    inPart = !isClose
                    closed = isClose
                    continue
                }
            }
            if inPart { part += line } else { out += line }
        }
        flushPart()
        return out
    }

    /// Lines with their LF (the last may lack it).
    static func lines(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var start = bytes.startIndex
        var i = start
        while i < bytes.endIndex {
            if bytes[i] == 0x0A {
                out.append(bytes[start...i])
                start = i + 1
            }
            i += 1
        }
        if start < bytes.endIndex { out.append(bytes[start...]) }
        return out
    }

    /// Header fields (each with its continuation lines), the empty line
    /// that ends them, and the body after it. Without an empty line
    /// everything is header.
    static func splitHeaders(_ bytes: [UInt8]) -> (headers: [[UInt8]], separator: [UInt8], body: ArraySlice<UInt8>) {
        var headers: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            var j = i
            while j < bytes.count && bytes[j] != 0x0A { j += 1 }
            let end = min(j + 1, bytes.count)
            let line = Array(bytes[i..<end])
            if line == [0x0A] || (line.count == 2 && line[0] == 0x0D) {
                return (headers, line, bytes[end...])
            }
            if let first = line.first, (first == 0x20 || first == 0x09), !headers.isEmpty {
                headers[headers.count - 1] += line
            } else {
                headers.append(line)
            }
            i = end
        }
        return (headers, [], bytes[bytes.count...])
    }

    static func name(of field: [UInt8]) -> String {
        guard let colon = field.firstIndex(of: 0x3A) else { return "" }
        return String(decoding: field[..<colon], as: UTF8.self).trimmed.lowercased()
    }

    static func fieldValue(_ headers: [[UInt8]], _ wanted: String) -> String? {
        guard let field = headers.first(where: { name(of: $0) == wanted }), let colon = field.firstIndex(of: 0x3A) else { return nil }
        return String(decoding: field[(colon + 1)...].filter { $0 != 0x0A && $0 != 0x0D }, as: UTF8.self)
    }

    static func mediaType(_ value: String) -> String {
        let type = value.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
        return type.trimmed.lowercased()
    }

    /// A parameter of a structured field: `boundary="abc"` or `boundary=abc`.
    static func parameter(_ value: String, _ wanted: String) -> String? {
        var rest = Substring(value)
        while let semicolon = rest.firstIndex(of: ";") {
            rest = rest[rest.index(after: semicolon)...]
            let piece = rest.drop(while: { $0 == " " || $0 == "\t" })
            guard let equals = piece.firstIndex(of: "=") else { continue }
            let key = piece[..<equals].trimmingCharacters().lowercased()
            var raw = piece[piece.index(after: equals)...].drop(while: { $0 == " " || $0 == "\t" })
            guard key == wanted else { continue }
            if raw.first == "\"" {
                raw = raw.dropFirst()
                var out = ""
                var escaped = false
                for ch in raw {
                    if escaped { out.append(ch); escaped = false; continue }
                    if ch == "\\" { escaped = true; continue }
                    if ch == "\"" { break }
                    out.append(ch)
                }
                return out
            }
            return String(raw.prefix(while: { $0 != ";" && $0 != " " && $0 != "\t" }))
        }
        return nil
    }

    /// The header lines with Content-Transfer-Encoding set to `encoding`
    /// (added when missing); nil leaves the fields as they are.
    static func replacingEncoding(_ headers: [[UInt8]], with encoding: String?) -> [UInt8] {
        guard let encoding else { return headers.flatMap { $0 } }
        var out: [UInt8] = []
        var replaced = false
        for field in headers {
            if name(of: field) == "content-transfer-encoding" {
                if !replaced { out += Array("Content-Transfer-Encoding: \(encoding)\n".utf8) }
                replaced = true
            } else {
                out += field
            }
        }
        if !replaced { out += Array("Content-Transfer-Encoding: \(encoding)\n".utf8) }
        return out
    }

    /// Quoted-printable (RFC 2045 section 6.7): LF is a hard line break,
    /// lines are at most 76 characters with `=` soft breaks, and white
    /// space at the end of a line is encoded.
    public static func quotedPrintable<Bytes: Collection>(_ body: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(body.count * 3 / 2)
        var line: [UInt8] = []
        func emit(_ token: [UInt8]) {
            if line.count + token.count > 75 {
                out += line
                out += [0x3D, 0x0A]
                line = []
            }
            line += token
        }
        var bytes = Array(body)
        let endsWithNewline = bytes.last == 0x0A
        if endsWithNewline { bytes.removeLast() }
        let sourceLines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        for source in sourceLines {
            var source = source
            if source.last == 0x0D { source = source.dropLast() }
            for (k, byte) in zip(source.indices, source) {
                let last = k == source.index(before: source.endIndex)
                let literal = (byte >= 33 && byte <= 126 && byte != 0x3D) || ((byte == 0x20 || byte == 0x09) && !last)
                emit(literal ? [byte] : [0x3D, hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            }
            out += line
            out.append(0x0A)
            line = []
        }
        // A body without a final newline (a part before its delimiter) keeps that.
        if !endsWithNewline && !out.isEmpty { out.removeLast() }
        return out
    }
}

extension String {
    fileprivate var trimmed: String { Substring(self).trimmingCharacters() }
}

extension Substring {
    fileprivate func trimmingCharacters() -> String {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}
