import Testing
@testable import SMTPProtocol

@Suite("DATA framing")
struct DataFramerTests {
    func frame(_ input: String, policy: DataFramer.BareLineEndingPolicy = .reject, chunk: Int = .max)
        -> (content: String, event: DataFramer.Event, consumed: Int) {
        var framer = DataFramer(policy: policy)
        var out: [UInt8] = []
        let bytes = Array(input.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            let event = framer.feed(Array(bytes[offset..<end]), into: &out)
            switch event {
            case .needMore:
                offset = end
            case .end(let consumed):
                return (String(decoding: out, as: UTF8.self), event, offset + consumed)
            case .bareLineEnding:
                return (String(decoding: out, as: UTF8.self), event, offset)
            }
        }
        return (String(decoding: out, as: UTF8.self), .needMore, offset)
    }

    @Test("CRLF becomes LF, dot-stuffing is removed, and the end is found in any chunking", arguments: [1, 2, 3, 7, 1000])
    func basic(chunk: Int) {
        let input = "Subject: x\r\n\r\n..leading\r\n.x\r\nlast\r\n.\r\nQUIT\r\n"
        let result = frame(input, chunk: chunk)
        #expect(result.content == "Subject: x\n\n.leading\nx\nlast\n")
        #expect(result.consumed == input.utf8.count - "QUIT\r\n".utf8.count)
    }

    @Test("an empty message")
    func empty() {
        let result = frame(".\r\n")
        #expect(result.content == "")
        #expect(result.event == .end(consumed: 3))
    }

    @Test("bare LF and bare CR are refused by default", arguments: [
        ("a\nb\r\n.\r\n", true), ("a\r\n.\n", true), ("a\rb\r\n.\r\n", false), ("a\r\n.\rx", false),
        ("body\n.\nMAIL FROM:<e@x>\r\n", true),
    ])
    func refused(input: String, bareLF: Bool) {
        #expect(frame(input).event == .bareLineEnding(bareLF: bareLF))
    }

    @Test("normalize: a bare LF ends a line but never the data")
    func normalize() {
        let smuggle = "a\n.\r\nMAIL FROM:<e@x>\r\nb\n.\nc\r\n.\r\n"
        for chunk in [1, 2, 5, 1000] {
            let result = frame(smuggle, policy: .normalize, chunk: chunk)
            #expect(result.content == "a\n.\nMAIL FROM:<e@x>\nb\n.\nc\n")
            #expect(result.consumed == smuggle.utf8.count)
        }
        let cr = frame("a\rb\r\n.\r\n", policy: .normalize)
        #expect(cr.content == "a\rb\n")
    }

    @Test("size counts the unstuffed LF content")
    func size() {
        var framer = DataFramer()
        var out: [UInt8] = []
        _ = framer.feed(Array("ab\r\n..c\r\n.\r\n".utf8), into: &out)
        #expect(framer.contentSize == "ab\n.c\n".utf8.count)
    }
}
