import Testing
@testable import Submission

@Suite("sendmail's command line")
struct SendmailOptionsTests {
    func parse(_ arguments: [String], as program: String = "sendmail") throws -> SendmailOptions {
        try SendmailOptions.parse(arguments, programName: program)
    }

    @Test("Debian cron: glued and separate options, one recipient")
    func cron() throws {
        let options = try parse(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"])
        #expect(options.fullName == "CronDaemon")
        #expect(options.ignoreDots)
        #expect(options.bodyType == "8BITMIME")
        #expect(options.recipients == ["root"])
        #expect(options.ignored == ["-oem"])
        #expect(options.mode == "m")
    }

    @Test("grouped flags, an argument after the group, -- ending the options")
    func grouped() throws {
        let options = try parse(["-tif", "me@example.org", "--", "-notanoption@example.org"])
        #expect(options.extractRecipients && options.ignoreDots)
        #expect(options.sender == "me@example.org")
        #expect(options.recipients == ["-notanoption@example.org"])
    }

    @Test("operands before options, comma-separated recipients")
    func operandsFirst() throws {
        let options = try parse(["a@example.org, \"Doe, J\" <b@example.org>", "-oi", "c", "-r", "<>"])
        #expect(options.recipients == ["a@example.org", "\"Doe, J\" <b@example.org>", "c"])
        #expect(options.sender == "<>")
        #expect(options.ignoreDots)
    }

    @Test("DSN options and the ones without effect, as written")
    func dsnAndIgnored() throws {
        let options = try parse(["-N", "failure,delay", "-Rhdrs", "-V", "env-1", "-odi", "-U", "-h", "17", "-X/tmp/t", "-v", "-L", "cron", "x"])
        #expect(options.notify == "failure,delay")
        #expect(options.ret == "hdrs")
        #expect(options.envid == "env-1")
        #expect(options.verbose && options.label == "cron")
        #expect(options.ignored == ["-odi", "-U", "-h17", "-X/tmp/t", "-v", "-Lcron"])
        #expect(options.recipients == ["x"])
    }

    @Test("the program name chooses the mode; -b overrides")
    func modes() throws {
        #expect(try parse([], as: "mailq").mode == "p")
        #expect(try parse([], as: "newaliases").mode == "i")
        #expect(try parse(["-bs"]).mode == "s")
        #expect(try parse(["-bv", "root"]).mode == "v")
        #expect(try parse(["-q"]).queueRun == "")
        #expect(try parse(["-q30m"]).queueRun == "30m")
    }

    @Test("errors: a missing argument, an unknown mode")
    func errors() {
        #expect(throws: SendmailOptions.UsageError(message: "option requires an argument -- 'f'")) {
            try parse(["root", "-f"])
        }
        #expect(throws: SendmailOptions.UsageError(message: "Invalid operation mode x")) {
            try parse(["-bx"])
        }
    }
}

@Suite("Address lists")
struct SendmailAddressListTests {
    @Test("splitting keeps quoted commas, comments and brackets")
    func split() {
        #expect(SendmailAddressList.split("a, \"b, c\" <d@e>, (x, y) f@g ,, ") == ["a", "\"b, c\" <d@e>", "(x, y) f@g"])
    }

    @Test("-t reads To, Cc and Bcc, folded lines and groups, not the body")
    func headers() {
        let message = Array("""
            From: me@example.org
            To: A <a@example.org>,
             b@example.org (Bee)
            cc: team: c@example.org, d@example.org;
            Bcc: undisclosed-recipients:;, e@example.org
            Subject: To: nobody@example.org

            To: body@example.org

            """.utf8)
        #expect(SendmailAddressList.recipients(inHeaders: message) ==
                ["a@example.org", "b@example.org", "c@example.org", "d@example.org", "e@example.org"])
    }

    @Test("input: CRLF becomes LF, a lone dot ends it without -i, a final newline is added")
    func normalize() {
        let input = Array("a\r\n.\r\nb".utf8)
        #expect(SubmittedMessage.normalize(input, ignoreDots: false) == Array("a\n".utf8))
        #expect(SubmittedMessage.normalize(input, ignoreDots: true) == Array("a\n.\nb\n".utf8))
    }
}

@Suite("recipient lists")
struct RecipientListTests {
    @Test("exact repeats go, the first spelling stays; local parts are compared exactly, domains without case")
    func duplicates() {
        let list = ["jun@Example.JP", "root", "jun@example.jp", "Jun@example.jp", "root@host.example.jp",
                    "\"a@b\"@example.jp", "\"a@b\"@EXAMPLE.jp", "root@other.example", "jun@example.jp"]
        #expect(SendmailAddressList.removingDuplicates(list, origin: "Host.example.jp")
                == ["jun@Example.JP", "root", "Jun@example.jp", "\"a@b\"@example.jp", "root@other.example"])
    }

    @Test("-t with a recipient in the header and on the command line queues it once")
    func headerAndCommandLine() {
        let content = Array("To: Jun <jun@example.jp>, b@example.jp\nCc: jun@EXAMPLE.JP\n\nbody\n".utf8)
        let all = SendmailAddressList.recipients(inHeaders: content) + ["jun@example.jp", "c@example.jp"]
        #expect(SendmailAddressList.removingDuplicates(all, origin: "example.jp") == ["jun@example.jp", "b@example.jp", "c@example.jp"])
    }
}
