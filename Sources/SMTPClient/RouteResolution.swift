#if canImport(Glibc)
import Glibc
#endif
import HikyakuConfig
import MailCore
import SMTPProtocol

/// Turns a destination into servers to try.
enum RouteResolution {
    static func makeResolver(_ configuration: Configuration) throws -> RouteResolver {
        return { destination in
            if isAddressLiteral(destination.host) {
                return .hosts([RouteHost(name: destination.host, addresses: [destination.host])])
            }
            return addresses(destination.host)
        }
    }

    static func isAddressLiteral(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    static func addresses(_ host: String) -> RouteLookup {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, nil, &hints, &list)
        guard rc == 0 else {
            let text = "Host or domain name not found. Name service error for name=\(host) type=A: \(String(cString: gai_strerror(rc)))"
            return rc == EAI_NONAME ? .failed(.bounced(EnhancedStatusCode(5, 1, 2), text)) : .failed(.deferred(EnhancedStatusCode(4, 4, 3), text))
        }
        defer { freeaddrinfo(list) }
        var found: [String] = []
        var node = list
        while let entry = node {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                let text = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !found.contains(text) { found.append(text) }
            }
            node = entry.pointee.ai_next
        }
        return .hosts([RouteHost(name: host, addresses: found)])
    }
}
