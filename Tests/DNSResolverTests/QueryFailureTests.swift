import DNSResolver
import MailCore
import Testing

@Suite("resolver errors and the statuses they lead to")
struct QueryFailureTests {
    @Test("h_errno maps to a failure", arguments: [
        (Int32(1), QueryFailure.nameNotFound), (2, .tryAgain), (3, .noRecovery), (4, .noData), (-1, .system(111)),
    ])
    func mapping(hErrno: Int32, expected: QueryFailure) {
        #expect(QueryFailure(hErrno: hErrno, errno: 111) == expected)
    }

    @Test("MX lookups: NXDOMAIN bounces with 5.1.2, SERVFAIL and timeouts defer with 4.4.3, in Postfix's words")
    func mx() {
        #expect(QueryFailure.nameNotFound.mxFailure(domain: "nx.example") == DNSFailure(EnhancedStatusCode(5, 1, 2),
                "Host or domain name not found. Name service error for name=nx.example type=MX: Host not found"))
        #expect(QueryFailure.tryAgain.mxFailure(domain: "slow.example") == DNSFailure(EnhancedStatusCode(4, 4, 3),
                "Host or domain name not found. Name service error for name=slow.example type=MX: Host not found, try again"))
        for failure in [QueryFailure.noRecovery, .system(110), .malformedReply, .cnameLoop] {
            #expect(failure.mxFailure(domain: "x").isTemporary)
        }
        #expect(QueryFailure.invalidName.mxFailure(domain: "a..b").status == EnhancedStatusCode(5, 1, 2))
    }

    @Test("address lookups: a missing host is 5.4.4, a temporary failure 4.4.3")
    func address() {
        #expect(QueryFailure.noData.addressFailure(host: "mx.example", type: .aaaa) == DNSFailure(EnhancedStatusCode(5, 4, 4),
                "Host or domain name not found. Name service error for name=mx.example type=AAAA: Host found but no data record of requested type"))
        #expect(QueryFailure.tryAgain.addressFailure(host: "mx.example", type: .a).status == EnhancedStatusCode(4, 4, 3))
        #expect(QueryFailure.system(111).reason == "Resolver internal error: Connection refused")
    }
}
