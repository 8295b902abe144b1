/// Messages to aliasd (private/aliasd), the one reader of maps.
///
/// `resolve` classifies a recipient address: which transport it goes to, and,
/// for local addresses, whether the user exists. `expand` returns one level
/// of an alias (local does the recursion, so that later each level can be
/// handled with its own owner's privileges).
public enum AliasProtocol {
    public enum RouteClass: String, Sendable {
        /// A local domain and a user or alias that exists.
        case local
        /// A local domain, but no such user or alias.
        case unknownLocal = "unknown_local"
        /// Not a local domain.
        case remote
    }

    public struct Resolution: Equatable, Sendable {
        public var routeClass: RouteClass
        /// For local addresses: the local part as looked up (lower case).
        public var localUser: String
        /// For remote addresses: the domain to deliver to.
        public var nexthop: String

        public init(routeClass: RouteClass, localUser: String = "", nexthop: String = "") {
            self.routeClass = routeClass
            self.localUser = localUser
            self.nexthop = nexthop
        }

        public var frame: IPCFrame {
            var f = IPCFrame(.aliasResolveReply)
            f.add(.routeClass, routeClass.rawValue)
            f.add(.localUser, localUser)
            f.add(.nexthop, nexthop)
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .aliasResolveReply else { throw .unexpectedMessage(frame.type.rawValue) }
            guard let routeClass = RouteClass(rawValue: try frame.require(.routeClass)) else {
                throw .missingAttribute(key: IPCKey.routeClass.rawValue, type: frame.type.rawValue)
            }
            self.routeClass = routeClass
            localUser = frame.string(.localUser) ?? ""
            nexthop = frame.string(.nexthop) ?? ""
        }
    }

    public static func resolveRequest(_ address: String) -> IPCFrame {
        var f = IPCFrame(.aliasResolve)
        f.add(.address, address)
        return f
    }

    public static func expandRequest(_ localPart: String) -> IPCFrame {
        var f = IPCFrame(.aliasExpand)
        f.add(.address, localPart)
        return f
    }

    public struct Expansion: Equatable, Sendable {
        /// nil when the name is not an alias.
        public var targets: [String]?

        public init(targets: [String]?) {
            self.targets = targets
        }

        public var frame: IPCFrame {
            var f = IPCFrame(.aliasExpandReply)
            f.add(.found, targets != nil)
            for t in targets ?? [] { f.add(.target, t) }
            return f
        }

        public init(frame: IPCFrame) throws(IPCError) {
            guard frame.type == .aliasExpandReply else { throw .unexpectedMessage(frame.type.rawValue) }
            targets = (frame.bool(.found) ?? false) ? frame.strings(.target) : nil
        }
    }

    public static func errorFrame(_ text: String) -> IPCFrame {
        var f = IPCFrame(.error)
        f.add(.text, text)
        return f
    }
}
