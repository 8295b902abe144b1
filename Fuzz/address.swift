// Fuzz target address: the parsers in MailCore that read addresses and
// address-bearing values from untrusted text: MailAddress.parsePath and
// parseMailbox (MAIL, RCPT, sendmail's command line), the DSN parameters
// that carry addresses (ORCPT and its xtext, ENVID, NOTIFY), and the
// domaintable rewriting of header fields.
//
// Input layout:
//   byte 0    1: allowUTF8, 2: requireBrackets
//   the rest  the text (invalid UTF-8 becomes U+FFFD, as it would in a
//             String made from a client's bytes)

import MailCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAddress(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let flags = input.first ?? 0
    let bytes = Array(input.dropFirst())
    let text = String(decoding: bytes, as: UTF8.self)
    checkPath(Substring(text), allowUTF8: flags & 1 != 0, requireBrackets: flags & 2 != 0)
    checkMailbox(Substring(text), allowUTF8: flags & 1 != 0)
    checkDomain(Substring(text))
    checkXText(text)
    checkDSNParameters(text)
    checkHeaderRewriting(bytes)
    return 0
}

func parsePath(_ text: Substring, requireBrackets: Bool = false, allowUTF8: Bool) -> Result<MailAddress?, AddressSyntaxError> {
    do {
        return .success(try MailAddress.parsePath(text, requireBrackets: requireBrackets, allowUTF8: allowUTF8))
    } catch {
        return .failure(error)
    }
}

func parseMailbox(_ text: Substring, allowUTF8: Bool) -> Result<MailAddress, AddressSyntaxError> {
    do {
        return .success(try MailAddress.parseMailbox(text, allowUTF8: allowUTF8))
    } catch {
        return .failure(error)
    }
}

/// What holds of every address a parser returns.
func checkParsed(_ address: MailAddress, from text: Substring, allowUTF8: Bool) {
    let written = address.description
    require(!address.localPart.isEmpty && address.localPart.utf8.count <= MailAddress.maximumLocalPartLength,
            "local part \(escaped(address.localPart)) from \(escaped(text))")
    if let domain = address.domain {
        require(domain.utf8.count <= MailAddress.maximumDomainLength
                && (MailAddress.isValidDomain(Substring(domain), allowUTF8: allowUTF8)
                    || MailAddress.isValidAddressLiteral(Substring(domain))),
                "domain \(escaped(domain)) from \(escaped(text))")
    }
    require(allowUTF8 || address.isASCII, "non-ASCII \(escaped(written)) without allowUTF8")
    // Nothing that could end a line, a header field or the angle brackets
    // around the address when it is written into a command or a header.
    require(!written.utf8.contains { $0 < 0x20 || $0 == 0x7f }, "control character in \(escaped(written))")
    var inQuotes = false
    var escapedByte = false
    for byte in written.utf8 {
        if escapedByte { escapedByte = false; continue }
        if inQuotes && byte == UInt8(ascii: "\\") { escapedByte = true; continue }
        if byte == UInt8(ascii: "\"") { inQuotes.toggle(); continue }
        if !inQuotes {
            require(byte != UInt8(ascii: " ") && byte != UInt8(ascii: "<") && byte != UInt8(ascii: ">")
                    && byte != UInt8(ascii: ",") && byte != UInt8(ascii: "("),
                    "\(escaped(written)) from \(escaped(text)): unquoted \(Unicode.Scalar(byte))")
        }
    }
    require(!inQuotes, "unbalanced quotes in \(escaped(written))")
    // A quoted local part is one quoted string, and nothing after it.
    if address.localPart.utf8.first == UInt8(ascii: "\"") {
        require(address.localPart.utf8.count >= 2 && address.localPart.utf8.last == UInt8(ascii: "\""),
                "quoted local part \(escaped(address.localPart)) from \(escaped(text))")
    }

    // The address written out reads back as itself: it goes into the queue
    // and into the next hop's MAIL and RCPT in this form.
    let again = parseMailbox(Substring(written), allowUTF8: allowUTF8)
    require(again == .success(address), "\(escaped(written)) (from \(escaped(text))) reads back as \(again)")
    let bracketed = "<\(written)>"
    let path = parsePath(Substring(bracketed), requireBrackets: true, allowUTF8: allowUTF8)
    if bracketed.utf8.count <= MailAddress.maximumPathLength {
        require(path == .success(address), "\(escaped(bracketed)) (from \(escaped(text))) reads back as \(path)")
    } else {
        // Only a bare path can be this long: RFC 5321 counts the brackets.
        require(path == .failure(.tooLong), "\(escaped(bracketed)) reads back as \(path)")
    }

    _ = address.localPartKey
    _ = address.lowercasedDomain
    let qualified = address.qualified(with: "example.jp")
    require(qualified.domain != nil && (address.domain == nil || qualified == address), "qualified \(qualified)")
}

func checkPath(_ text: Substring, allowUTF8: Bool, requireBrackets: Bool) {
    let result = parsePath(text, requireBrackets: requireBrackets, allowUTF8: allowUTF8)
    switch result {
    case .success(nil):
        require(text == "<>", "null path from \(escaped(text))")
    case .success(let address?):
        require(!requireBrackets || (text.utf8.first == UInt8(ascii: "<") && text.utf8.last == UInt8(ascii: ">")),
                "no brackets: \(escaped(text))")
        require(text.utf8.count <= MailAddress.maximumPathLength, "a path of \(text.utf8.count) octets")
        checkParsed(address, from: text, allowUTF8: allowUTF8)
        if !requireBrackets, text.utf8.first != UInt8(ascii: "<"), text.utf8.first != UInt8(ascii: "@") {
            // A bare path is a mailbox.
            require(parseMailbox(text, allowUTF8: allowUTF8) == .success(address), "bare path \(escaped(text))")
        }
    case .failure:
        break
    }
    // Brackets do not change what a path means, only what may be omitted.
    if !requireBrackets, case .success = result, text.utf8.first == UInt8(ascii: "<") {
        require(parsePath(text, requireBrackets: true, allowUTF8: allowUTF8) == result, "brackets \(escaped(text))")
    }
    // allowUTF8 only widens: what parses without it parses the same with it.
    if !allowUTF8, case .success = result {
        require(parsePath(text, requireBrackets: requireBrackets, allowUTF8: true) == result, "allowUTF8 narrows \(escaped(text))")
    }
}

func checkMailbox(_ text: Substring, allowUTF8: Bool) {
    let result = parseMailbox(text, allowUTF8: allowUTF8)
    guard case .success(let address) = result else { return }
    checkParsed(address, from: text, allowUTF8: allowUTF8)
    if text.utf8.count <= MailAddress.maximumPathLength {
        require(parsePath(text, allowUTF8: allowUTF8) == .success(address), "mailbox \(escaped(text)) as a bare path")
    }
    if !allowUTF8 {
        require(parseMailbox(text, allowUTF8: true) == result, "allowUTF8 narrows \(escaped(text))")
    }
}

func checkDomain(_ text: Substring) {
    for allowUTF8 in [false, true] where MailAddress.isValidDomain(text, allowUTF8: allowUTF8) {
        require(!text.isEmpty && text.utf8.count <= MailAddress.maximumDomainLength, "domain \(escaped(text))")
        require(allowUTF8 || text.utf8.allSatisfy { $0 < 0x80 }, "non-ASCII domain \(escaped(text))")
        require(!text.utf8.contains { $0 < 0x20 || $0 == 0x7f || $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "@") },
                "domain \(escaped(text))")
        require(parseMailbox(Substring("postmaster@" + text), allowUTF8: allowUTF8).map(\.domain) == .success(String(text)),
                "postmaster@\(escaped(text))")
    }
    if MailAddress.isValidAddressLiteral(text) {
        require(text.utf8.first == UInt8(ascii: "[") && text.utf8.last == UInt8(ascii: "]") && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f },
                "address literal \(escaped(text))")
    }
}

func checkXText(_ text: String) {
    let encoded = XText.encode(text)
    require(encoded.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7e && $0 != UInt8(ascii: "=") }, "xtext \(escaped(encoded))")
    require(XText.decode(encoded) == Array(text.utf8), "xtext round trip of \(escaped(text))")
    if let decoded = XText.decode(text) {
        let decodedText = String(decoding: decoded, as: UTF8.self)
        if Array(decodedText.utf8) == decoded {
            require(XText.decode(XText.encode(decodedText)) == decoded, "xtext \(escaped(text)) decoded and encoded")
        }
    }
}

func checkDSNParameters(_ text: String) {
    if let original = OriginalRecipient(parameter: text) {
        require(original.isValid, "ORCPT \(escaped(text)) is not valid")
        require(OriginalRecipient(parameter: original.parameter) == original, "ORCPT \(escaped(text)) parameter round trip")
        require(OriginalRecipient(stored: original.stored) == original, "ORCPT \(escaped(text)) stored round trip")
        require(!original.description.utf8.contains { $0 < 0x20 || $0 == 0x7f }, "ORCPT \(escaped(original.description))")
    }
    if let stored = OriginalRecipient(stored: text) {
        require(OriginalRecipient(parameter: stored.parameter) == stored, "stored ORCPT \(escaped(text))")
    }
    if let envelopeID = DSNEnvelopeID.parse(parameter: text) {
        require(DSNEnvelopeID.validated(envelopeID) == envelopeID, "ENVID \(escaped(text))")
        require(DSNEnvelopeID.parse(parameter: XText.encode(envelopeID)) == envelopeID, "ENVID \(escaped(text)) round trip")
    }
    if let notify = DSNNotify(parameter: text) {
        require(notify.isValid && !notify.isEmpty, "NOTIFY \(escaped(text))")
        require(DSNNotify(parameter: notify.description) == notify, "NOTIFY \(escaped(text)) round trip")
    }
    if let notify = DSNNotify(option: text) {
        require(notify.isValid && DSNNotify(parameter: notify.description) == notify, "-N \(escaped(text))")
    }
}

let rewriter = DomainRewriter(table: ["example.jp": "example.com", "Old.Example": "new.example", "a": "b-c.example"])

func checkHeaderRewriting(_ value: [UInt8]) {
    guard let rewritten = rewriter.rewriteHeaderValue(value) else { return }
    require(rewritten != value, "a rewrite that changed nothing: \(escaped(value))")
    // What is rewritten is a domain: nothing else moves.
    let structure: (UInt8) -> Bool = { [10, 13, 34, 40, 41, 44, 60, 62, 92].contains($0) }
    require(rewritten.filter(structure) == value.filter(structure), "\(escaped(value)) became \(escaped(rewritten))")
    // The table's new domains are not keys: a second pass changes nothing.
    let twice = rewriter.rewriteHeaderValue(rewritten)
    require(twice == nil, "\(escaped(value)) rewritten twice: \(escaped(rewritten)), then \(escaped(twice ?? []))")
}
