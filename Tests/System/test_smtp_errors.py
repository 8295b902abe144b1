"""Every kind of bad input gets its exact reply, and none of it gets mail
through that should not."""
import os
import re
import time

from conftest import HOSTNAME
from smtpclient import RawSMTP


def session(mta, **kw):
    s = RawSMTP(mta.port, **kw)
    assert s.greeting == f"220 {HOSTNAME} ESMTP hikyaku"
    return s


def test_command_order_errors(mta):
    with session(mta) as s:
        assert s.command("MAIL FROM:<a@example.org>") == "503 5.5.1 Error: send HELO/EHLO first"
        s.ehlo()
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "503 5.5.1 Error: need MAIL command"
        assert s.command("DATA") == "503 5.5.1 Error: need RCPT command"
        assert s.command("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
        assert s.command("MAIL FROM:<b@example.org>") == "503 5.5.1 Error: nested MAIL command"
        assert s.command("RCPT TO:<nobody-here@example.test>") == "550 5.1.1 <nobody-here@example.test>... User unknown"
        assert s.command("DATA") == "554 5.5.1 Error: no valid recipients"
        assert s.command("FOO bar") == "502 5.5.2 Error: command not recognized"
        assert s.command("RSET") == "250 2.0.0 Ok"
        assert s.command("NOOP") == "250 2.0.0 Ok"
        assert s.command("VRFY root") == "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery"
        assert s.command("HELP").startswith("214-2.0.0 ")
        assert s.command("QUIT") == "221 2.0.0 Bye"
        assert s.closed()
    mta.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 550 5\.1\.1 <nobody-here@example\.test>\.\.\. User unknown; from=<a@example\.org> to=<nobody-here@example\.test> proto=ESMTP helo=<client\.example\.org>")


def test_syntax_errors(mta):
    with session(mta) as s:
        assert s.command("EHLO") == "501 5.5.4 Syntax: EHLO hostname"
        s.ehlo()
        assert s.command("MAIL FROM:<not an address>") == "501 5.1.7 Bad sender address syntax"
        assert s.command("MAIL FROM:<a@example.org> FOO=BAR") == "555 5.5.4 Unsupported option: FOO"
        assert s.command("MAIL FROM:<a@example.org> BODY=9BIT") == "501 5.5.4 Bad BODY keyword: 9BIT"
        assert s.command("MAIL FROM:<jün@example.org>") == "553 5.6.7 Must declare SMTPUTF8 to send Unicode addresses"
        assert s.command("MAIL FROM:<>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<>") == "501 5.1.3 Bad recipient address syntax"
        assert s.command("RCPT TO:<a@@example.test>") == "501 5.1.3 Bad recipient address syntax"


def test_over_long_line_is_refused_and_the_session_goes_on(mta):
    with session(mta) as s:
        s.ehlo()
        assert s.command("NOOP " + "x" * 3000) == "500 5.5.2 Error: line too long"
        assert s.command("NOOP") == "250 2.0.0 Ok"


def test_declared_size_over_the_limit(make_mta):
    mta = make_mta("message_size_limit = 10000")
    with session(mta) as s:
        assert "250-SIZE 10000" in s.ehlo()
        assert s.command("MAIL FROM:<a@example.org> SIZE=10001") == "552 5.3.4 Message size exceeds fixed limit"
        assert s.command("MAIL FROM:<a@example.org> SIZE=10000") == "250 2.1.0 Ok"


def test_body_larger_than_the_limit_is_refused_after_the_data(make_mta):
    mta = make_mta("message_size_limit = 10000")
    with session(mta) as s:
        s.ehlo()
        assert s.command("MAIL FROM:<a@example.org> SIZE=500") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354 ")
        s.send(("Subject: big\r\n\r\n" + ("y" * 76 + "\r\n") * 300 + ".\r\n").encode())
        assert s.reply() == "552 5.3.4 Error: message file too big"
        # The session goes on and a proper message still gets through.
        assert s.command("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354 ")
        assert s.command("Subject: small\r\n\r\nok\r\n.").startswith("250 2.0.0 Ok: queued as ")
    data = mta.wait_mbox("hkt-alice", 1)
    mta.wait_queue_empty()
    assert b"Subject: big" not in data and b"Subject: small" in data
    assert mta.queue_files("tmp") == []


def test_too_many_recipients(make_mta):
    mta = make_mta("smtpd_recipient_limit = 3")
    with session(mta) as s:
        s.ehlo()
        s.command("MAIL FROM:<a@example.org>")
        for user in ("hkt-alice", "hkt-bob", "hkt-carol"):
            assert s.command(f"RCPT TO:<{user}@example.test>") == "250 2.1.5 Ok"
        assert s.command("RCPT TO:<hkt-dave@example.test>") == "452 4.5.3 Error: too many recipients"


def test_too_many_errors_ends_the_session(make_mta):
    mta = make_mta("smtpd_hard_error_limit = 3")
    with session(mta) as s:
        s.ehlo()
        assert s.command("BAD1") == "502 5.5.2 Error: command not recognized"
        assert s.command("BAD2") == "502 5.5.2 Error: command not recognized"
        assert s.command("BAD3") == "502 5.5.2 Error: command not recognized"
        assert s.reply() == f"421 4.7.0 {HOSTNAME} Error: too many errors"
        assert s.closed()


def test_idle_timeout(make_mta):
    mta = make_mta("smtpd_timeout = 2s")
    with session(mta) as s:
        s.ehlo()
        started = time.time()
        assert s.reply() == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
        assert 1.5 <= time.time() - started < 10
        assert s.closed()


SMUGGLE = ("Subject: outer\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\n"
           "RCPT TO:<hkt-bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n")


def test_bare_lf_in_data_is_refused_and_nothing_is_smuggled(mta):
    with session(mta) as s:
        s.ehlo()
        s.command("MAIL FROM:<a@example.org>")
        s.command("RCPT TO:<hkt-alice@example.test>")
        assert s.command("DATA").startswith("354 ")
        s.send(SMUGGLE)
        assert s.reply() == "550 5.5.2 Error: bare <LF> received; lines must end with <CR><LF>"
        assert s.closed()
    time.sleep(1)
    assert not os.path.exists(os.path.join(mta.mail, "hkt-alice"))
    assert not os.path.exists(os.path.join(mta.mail, "hkt-bob"))
    assert mta.queue_files("tmp") == [] and mta.queue_files("incoming") == []


def test_bare_cr_in_data_is_refused(mta):
    with session(mta) as s:
        s.ehlo()
        s.command("MAIL FROM:<a@example.org>")
        s.command("RCPT TO:<hkt-alice@example.test>")
        assert s.command("DATA").startswith("354 ")
        s.send("Subject: x\r\n\r\nbody\r.\r\n.\r\n")
        assert s.reply() == "550 5.5.2 Error: bare <CR> received; lines must end with <CR><LF>"
        assert s.closed()


def test_normalize_policy_never_ends_data_on_a_bare_lf(make_mta):
    mta = make_mta("smtpd_forbid_bare_newline = normalize")
    with session(mta) as s:
        s.ehlo()
        s.command("MAIL FROM:<a@example.org>")
        s.command("RCPT TO:<hkt-alice@example.test>")
        assert s.command("DATA").startswith("354 ")
        s.send(SMUGGLE)
        # Only the final CRLF.CRLF ends the data: one message, the "smuggled"
        # commands are part of its body.
        assert s.reply().startswith("250 2.0.0 Ok: queued as ")
    data = mta.wait_mbox("hkt-alice", 1)
    mta.wait_queue_empty()
    assert b"MAIL FROM:<evil@example.org>" in data and b"Subject: smuggled" in data
    assert not os.path.exists(os.path.join(mta.mail, "hkt-bob"))


def test_relay_is_only_for_127_0_0_1(mta):
    with session(mta, source="127.0.0.2") as s:
        s.ehlo()
        assert s.command("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
        # As sendmail's rules say it: 127.0.0.2 has no name, and no access
        # entry lets it relay.
        assert s.command("RCPT TO:<someone@elsewhere.example>") == \
            "550 5.7.1 <someone@elsewhere.example>... Relaying denied. IP name lookup failed [127.0.0.2]"
        # Local recipients and postmaster are always accepted.
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        assert s.command("RCPT TO:<postmaster>") == "250 2.1.5 Ok"
    mta.wait_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.2\]: 550 5\.7\.1 <someone@elsewhere\.example>\.\.\. Relaying denied")
    with session(mta) as s:
        s.ehlo()
        s.command("MAIL FROM:<a@example.org>")
        assert s.command("RCPT TO:<someone@elsewhere.example>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354 ")
        queued = s.command("Subject: out\r\n\r\nx\r\n.")
        assert queued.startswith("250 2.0.0 Ok: queued as ")
    queue_id = queued.rsplit(" ", 1)[1]
    # The tests' name server does not answer: the message waits in deferred/.
    mta.wait_log(rf"{queue_id}: to=<someone@elsewhere\.example>, relay=none, .*status=deferred")
    deadline = time.time() + 10
    while queue_id not in mta.queue_files("deferred") and time.time() < deadline:
        time.sleep(0.1)
    assert queue_id in mta.queue_files("deferred")


def test_postmaster_is_accepted_and_delivered_without_an_alias(make_mta):
    mta = make_mta(aliases="# no aliases at all\n")
    with session(mta, source="127.0.0.3") as s:
        s.ehlo()
        s.command("MAIL FROM:<a@example.org>")
        assert s.command("RCPT TO:<Postmaster>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354 ")
        assert s.command("Subject: hi\r\n\r\nx\r\n.").startswith("250 ")
    mta.wait_log(r"to=<root@mail\.example\.test>, orig_to=<Postmaster@mail\.example\.test>, relay=local.*status=sent")


def test_a_remote_client_is_greeted_at_once_whatever_its_reverse_lookup_does(make_mta):
    import subprocess
    address = "10.199.77.1"
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True)
    try:
        # No greet pause: this is about DNS alone.
        mta = make_mta("smtpd_client_lookup_timeout = 1s\nsmtpd_greet_pause = 0")
        started = time.time()
        with session(mta, source=address) as s:
            greeted = time.time() - started
            s.ehlo()
            s.command("MAIL FROM:<a@example.org>")
            # Denied whatever the resolver did: FAIL (no name) or TEMP (no answer).
            reply = s.command("RCPT TO:<x@elsewhere.example>")
            assert reply.startswith("550 5.7.1 <x@elsewhere.example>... Relaying denied") \
                or reply.startswith("450 4.4.0 <x@elsewhere.example>... Relaying temporarily denied"), reply
            assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
            assert s.command("DATA").startswith("354 ")
            assert s.command("Subject: remote\r\n\r\nx\r\n.").startswith("250 ")
        # The greeting never waits for DNS (this machine's resolver can stall 5 s).
        assert greeted < 0.5, greeted
        data = mta.wait_mbox("hkt-alice", 1)
        assert re.search(rb"Received: from client\.example\.org \(\S+ \[10\.199\.77\.1\]\)", data), data
        mta.wait_log(r"connect from \S+\[10\.199\.77\.1\]")
    finally:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True)
