import Testing
@testable import MailCore

@Suite("8-bit to 7-bit MIME conversion")
struct MIMEDowngradeTests {
    func convert(_ text: String) -> String {
        String(decoding: MIMEDowngrade.sevenBit(Array(text.utf8)), as: UTF8.self)
    }

    @Test("7-bit mail is left byte for byte")
    func unchanged() {
        let text = "Subject: x\nContent-Type: text/plain\n\nplain\n"
        #expect(convert(text) == text)
    }

    @Test("a text part becomes quoted-printable; trailing space and = are encoded; long lines get soft breaks")
    func leaf() {
        let long = String(repeating: "é", count: 30)
        let out = convert("Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\ncafé = ok \n\(long)\n")
        #expect(out.hasPrefix("Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9 =3D ok=20\n"))
        let lines = out.split(separator: "\n")
        #expect(lines.allSatisfy { $0.count <= 76 })
        #expect(out.allSatisfy { $0.isASCII })
        // Decoding gives the original back.
        let body = String(out[out.firstRange(of: "\n\n")!.upperBound...])
        #expect(Self.decodeQP(body) == "café = ok \n\(long)\n")
    }

    @Test("mail without MIME headers is labelled unknown-8bit")
    func noMIME() {
        #expect(convert("Subject: x\n\nnaïve\n") ==
                "Subject: x\nMIME-Version: 1.0\nContent-Type: text/plain; charset=unknown-8bit\nContent-Transfer-Encoding: quoted-printable\n\nna=C3=AFve\n")
    }

    @Test("multipart: only the 8-bit part changes, delimiters and the 7-bit part stay")
    func multipart() {
        let text = """
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="b1"

            preamble
            --b1
            Content-Type: text/plain

            ascii only
            --b1
            Content-Type: text/plain; charset=utf-8
            Content-Transfer-Encoding: 8bit

            grüße
            --b1
            Content-Type: message/rfc822

            Subject: inner
            Content-Type: text/plain; charset=utf-8

            ü
            --b1--
            epilogue

            """
        let expected = """
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="b1"

            preamble
            --b1
            Content-Type: text/plain

            ascii only
            --b1
            Content-Type: text/plain; charset=utf-8
            Content-Transfer-Encoding: quoted-printable

            gr=C3=BC=C3=9Fe
            --b1
            Content-Type: message/rfc822

            Subject: inner
            Content-Type: text/plain; charset=utf-8
            Content-Transfer-Encoding: quoted-printable

            =C3=BC
            --b1--
            epilogue

            """
        #expect(convert(text) == expected)
    }

    @Test("base64 parts are not touched")
    func base64() {
        let text = "MIME-Version: 1.0\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nw6k=\n\u{e9}\n"
        #expect(convert(text) == text)
    }

    static func decodeQP(_ text: String) -> String {
        var bytes: [UInt8] = []
        let input = Array(text.utf8)
        var i = 0
        while i < input.count {
            if input[i] == 0x3D {
                if i + 1 < input.count && input[i + 1] == 0x0A { i += 2; continue }
                bytes.append(UInt8(String(decoding: input[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)!)
                i += 3
            } else {
                bytes.append(input[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
