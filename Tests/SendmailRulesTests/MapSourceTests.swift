import Testing
@testable import SendmailRules

@Suite("makemap's text format")
struct MapSourceTests {
    @Test("keys fold to lower case, values keep theirs; comments only in column 1")
    func basics() {
        let source = MapSource(text: "# comment\nJun@Example.JP\tJun Example\n\nkey value # not a comment\nlast line")
        #expect(source.problems.isEmpty)
        #expect(source.lines.map { String(decoding: $0.key, as: UTF8.self) } == ["jun@example.jp", "key", "last"])
        #expect(source.lines.map { String(decoding: $0.value, as: UTF8.self) } == ["Jun Example", "value # not a comment", "line"])
        #expect(source.lines.map(\.number) == [2, 4, 5])
    }

    @Test("errors keep the rest of the map", arguments: [
        ("keyonly\nok 1\n", [MapSource.Problem(line: 1, kind: .noValue(key: "keyonly"))]),
        (" lead x\nok 1\n", [MapSource.Problem(line: 1, kind: .leadingSpace)]),
    ])
    func problems(text: String, expected: [MapSource.Problem]) {
        let source = MapSource(text: text)
        #expect(source.problems == expected)
        #expect(source.lines.count == 1)
    }

    @Test("CR before the newline stays in the value, as makemap keeps it; -f keeps case; -t and -e")
    func options() {
        #expect(MapSource(text: "a one\r\n").lines.first?.value == Array("one\r".utf8))
        #expect(MapSource(text: "Alpha One\n", options: .init(foldCase: false)).lines.first?.key == Array("Alpha".utf8))
        let tabbed = MapSource(text: "a b:c d\n", options: .init(delimiter: UInt8(ascii: ":")))
        #expect(tabbed.lines.first?.key == Array("a b".utf8) && tabbed.lines.first?.value == Array("c d".utf8))
        #expect(MapSource(text: "k\n", options: .init(allowEmptyValues: true)).lines.count == 1)
    }

    @Test("duplicates: the first entry wins, the rest are reported")
    func duplicates() {
        let (table, duplicates) = MapSource(text: "a 1\nA 2\n").table(name: "m", path: "/m")
        #expect(table.lookup("a")?.value == "1" && table.lookup("a")?.line == 1)
        #expect(duplicates.map(\.number) == [2])
    }
}
