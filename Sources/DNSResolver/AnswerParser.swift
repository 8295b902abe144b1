#if canImport(Glibc)
import Glibc
#endif
import CResolv

/// Reads the answer section of a reply with libresolv's parser
/// (ns_initparse, ns_parserr, dn_expand): A, AAAA, MX and CNAME data,
/// other types by number.
enum AnswerParser {
    static func answers(_ message: [UInt8]) -> Result<[DNSRecord], QueryFailure> {
        message.withUnsafeBufferPointer { buffer -> Result<[DNSRecord], QueryFailure> in
            guard let base = buffer.baseAddress else { return .failure(.malformedReply) }
            let end = base + buffer.count
            var handle = ns_msg()
            guard ns_initparse(base, Int32(buffer.count), &handle) == 0 else { return .failure(.malformedReply) }
            var records: [DNSRecord] = []
            let count = hk_ns_msg_count(&handle, ns_s_an)
            for index in 0..<count {
                var rr = ns_rr()
                guard ns_parserr(&handle, ns_s_an, index, &rr) == 0 else { return .failure(.malformedReply) }
                guard hk_ns_rr_class(&rr) == Int32(ns_c_in.rawValue) else { continue }
                let owner = withUnsafePointer(to: &rr) { String(cString: hk_ns_rr_name($0)) }
                let length = Int(hk_ns_rr_rdlen(&rr))
                guard let rdata = hk_ns_rr_rdata(&rr), rdata + length <= end else { return .failure(.malformedReply) }
                let type = hk_ns_rr_type(&rr)
                switch type {
                case DNSRecordType.a.rawValue, DNSRecordType.aaaa.rawValue:
                    guard length == (type == DNSRecordType.a.rawValue ? 4 : 16),
                          let address = IPAddress(bytes: Array(UnsafeBufferPointer(start: rdata, count: length))) else {
                        return .failure(.malformedReply)
                    }
                    records.append(DNSRecord(owner: owner, data: type == DNSRecordType.a.rawValue ? .a(address) : .aaaa(address)))
                case DNSRecordType.mx.rawValue:
                    guard length >= 3, let exchange = expand(base, end, rdata + 2) else { return .failure(.malformedReply) }
                    let preference = Int(rdata[0]) << 8 | Int(rdata[1])
                    records.append(DNSRecord(owner: owner, data: .mx(preference: preference, exchange: exchange)))
                case DNSRecordType.cname.rawValue:
                    guard let target = expand(base, end, rdata) else { return .failure(.malformedReply) }
                    records.append(DNSRecord(owner: owner, data: .cname(target)))
                default:
                    records.append(DNSRecord(owner: owner, data: .other(type: Int(type))))
                }
            }
            return .success(records)
        }
    }

    /// A (possibly compressed) name at `at`, as text without the final dot;
    /// the root is `""`.
    static func expand(_ base: UnsafePointer<UInt8>, _ end: UnsafePointer<UInt8>, _ at: UnsafePointer<UInt8>) -> String? {
        var name = [CChar](repeating: 0, count: Int(NS_MAXDNAME) + 1)
        guard dn_expand(base, end, at, &name, Int32(name.count)) >= 0 else { return nil }
        let text = String(decoding: name.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text == "." ? "" : text
    }
}
