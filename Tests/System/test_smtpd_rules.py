"""smtpd's session rules: CHUNKING (BDAT), clients that speak before the
greeting, pipelining where RFC 2920 forbids it, strict envelope syntax and
TCP wrappers (/etc/hosts.allow, /etc/hosts.deny)."""
import os
import socket
import time

from conftest import HOSTNAME
from smtpclient import RawSMTP
from test_queue_tools import bs_session

REMOTE = "127.0.0.2"  # not 127.0.0.1: held to the rules for other hosts


def envelope(s, rcpt="hkt-alice@example.test"):
    s.ehlo()
    assert s.command("MAIL FROM:<sender@example.org>") == "250 2.1.0 Ok"
    assert s.command(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Ok"


def test_bdat_chunks_make_one_message_with_dots_and_line_ends_intact(mta):
    first = b"Subject: chunked\r\n\r\n.leading dot stays\r\n"
    second = b"\r\n.\r\nMAIL FROM:<smuggled@evil.example>\r\nlast line\r"
    third = b"\n"
    with RawSMTP(mta.port) as s:
        assert "CHUNKING" in s.ehlo()
        assert s.command("MAIL FROM:<sender@example.org>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        # Pipelined chunks (RFC 3030 allows it), the CR and LF of one line
        # end split across two chunks.
        s.send(b"BDAT %d\r\n" % len(first) + first + b"BDAT %d\r\n" % len(second) + second)
        assert s.reply() == f"250 2.0.0 Ok: {len(first)} octets received"
        assert s.reply() == f"250 2.0.0 Ok: {len(second)} octets received"
        s.send(b"BDAT 1 LAST\r\n" + third)
        assert s.reply().startswith("250 2.0.0 Ok: queued as ")
        assert s.command("QUIT") == "221 2.0.0 Bye"
    data = mta.wait_mbox("hkt-alice", 1)
    assert b"\n..leading dot stays\n" not in data
    assert b"\n\n.\nMAIL FROM:<smuggled@evil.example>\nlast line\n" in data, data
    mta.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 bdat=3 quit=1 commands=7")
    time.sleep(0.5)
    assert mta.mbox("hkt-alice").count(b"\nFrom ") + mta.mbox("hkt-alice").startswith(b"From ") == 1


def test_a_discarded_bdat_message_takes_its_time_limit_with_it(make_mta):
    """RSET ends a chunked message; the next message has the whole
    smtpd_data_time_limit, not what was left of the first one's."""
    mta = make_mta("smtpd_data_time_limit = 3s")
    with RawSMTP(mta.port) as s:
        envelope(s)
        s.send(b"BDAT 2\r\nhi")
        assert s.reply() == "250 2.0.0 Ok: 2 octets received"
        assert s.command("RSET") == "250 2.0.0 Ok"
        time.sleep(2)
        assert s.command("MAIL FROM:<sender@example.org>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        s.send(b"BDAT 8\r\nSubject:")
        assert s.reply() == "250 2.0.0 Ok: 8 octets received"
        time.sleep(2)  # past the first message's limit, within the second's
        s.send(b"BDAT 8 LAST\r\n second\n")
        assert s.reply().startswith("250 2.0.0 Ok: queued as ")
    assert b"Subject: second" in mta.wait_mbox("hkt-alice", 1)


def test_bdat_over_the_size_limit_and_out_of_order(make_mta):
    mta = make_mta("message_size_limit = 100000")
    with RawSMTP(mta.port) as s:
        # No transaction: the chunk is read and thrown away, not run as commands.
        junk = b"MAIL FROM:<x@example.org>\r\n"
        s.ehlo()
        s.send(b"BDAT %d LAST\r\n" % len(junk) + junk)
        assert s.reply() == "503 5.5.1 Error: need RCPT command"
        assert s.command("NOOP") == "250 2.0.0 Ok"
        envelope(s)
        big = b"x" * 99 + b"\r\n"
        s.send(b"BDAT %d\r\n" % (len(big) * 1100))
        for _ in range(1100):
            s.send(big)
        assert s.reply() == "552 5.3.4 Error: message file too big"
        # The failed transaction is over: a further chunk is refused.
        s.send(b"BDAT 3 LAST\r\nabc")
        assert s.reply() == "503 5.5.1 Error: need RCPT command"
        envelope(s)
        s.send(b"BDAT 5\r\nhello")
        assert s.reply() == "250 2.0.0 Ok: 5 octets received"
        assert s.command("DATA") == "503 5.5.1 Error: DATA after BDAT"
        assert s.command("RSET") == "250 2.0.0 Ok"
        # A chunk size that cannot be read ends the session.
        assert s.command("BDAT many") == "501 5.5.4 Syntax: BDAT count [LAST]"
        assert s.closed()
    time.sleep(1)
    path = os.path.join(mta.mail, "hkt-alice")
    assert not os.path.exists(path) or mta.mbox("hkt-alice") == b""
    assert mta.queue_files("incoming") == [] and mta.queue_files("active") == []


def test_sendmail_bs_takes_bdat(mta):
    body = b"Subject: bs chunk\r\n\r\nvia sendmail -bs\r\n"
    replies, out = bs_session(mta, "root", b"EHLO localhost\r\nMAIL FROM:<root>\r\nRCPT TO:<hkt-bob@example.test>\r\n"
                              + b"BDAT %d LAST\r\n" % len(body) + body + b"QUIT\r\n")
    assert out.returncode == 0, replies
    assert "250 2.0.0 Ok: queued" in replies, replies
    assert b"via sendmail -bs\n" in mta.wait_mbox("hkt-bob", 1)


def test_a_client_that_speaks_before_the_greeting_is_refused(make_mta):
    mta = make_mta("smtpd_greet_pause = 2s")
    sock = socket.create_connection(("127.0.0.1", mta.port), source_address=(REMOTE, 0), timeout=10)
    sock.sendall(b"EHLO hasty.example\r\nMAIL FROM:<spam@example.org>\r\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert data == f"554 5.5.0 {HOSTNAME} Error: client sent data before the greeting\r\n".encode()
    mta.wait_log(r"NOQUEUE: reject: CONNECT from unknown\[127\.0\.0\.2\]: client sent \d+ bytes before the greeting")
    # A patient client is greeted after the pause; the local host at once.
    started = time.time()
    with RawSMTP(mta.port, source=REMOTE) as s:
        assert s.greeting == f"220 {HOSTNAME} ESMTP hikyaku"
        assert time.time() - started >= 1.9
    started = time.time()
    with RawSMTP(mta.port) as s:
        assert s.greeting.startswith("220 ")
        assert time.time() - started < 1


def test_pipelining_where_rfc2920_forbids_it_ends_the_session(make_mta):
    mta = make_mta("smtpd_greet_pause = 0")
    # Message content sent before the 354.
    with RawSMTP(mta.port, source=REMOTE) as s:
        s.ehlo()
        s.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<hkt-alice@example.test>\r\nDATA\r\nSubject: early\r\n\r\nx\r\n.\r\n")
        assert s.reply() == "250 2.1.0 Ok"
        assert s.reply() == "250 2.1.5 Ok"
        assert s.reply() == "503 5.5.0 Error: improper use of SMTP command pipelining"
        assert s.closed()
    # Commands sent ahead in a HELO session (no PIPELINING offered).
    with RawSMTP(mta.port, source=REMOTE) as s:
        assert s.command("HELO old.example") == f"250 {HOSTNAME}"
        s.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<hkt-alice@example.test>\r\n")
        assert s.reply() == "503 5.5.0 Error: improper use of SMTP command pipelining"
        assert s.closed()
    # DATA with more behind it while a BDAT message is open: the message
    # goes with the session, and the refusal is logged all the same.
    with RawSMTP(mta.port, source=REMOTE) as s:
        s.ehlo()
        assert s.command("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        s.send(b"BDAT 3\r\nabc")
        assert s.reply().startswith("250 2.0.0")
        s.send("DATA\r\nNOOP\r\n")
        assert s.reply() == "503 5.5.0 Error: improper use of SMTP command pipelining"
        assert s.closed()
    mta.wait_log(r"NOQUEUE: reject: DATA from unknown\[127\.0\.0\.2\]: improper use of SMTP command pipelining", count=2)
    # Proper pipelining works, and the local host is not held to the rule.
    with RawSMTP(mta.port, source=REMOTE) as s:
        s.ehlo()
        s.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<hkt-alice@example.test>\r\nDATA\r\n")
        assert [s.reply() for _ in range(3)][-1].startswith("354 ")
        assert s.command("Subject: proper\r\n\r\nx\r\n.").startswith("250 2.0.0 Ok: queued")
    with RawSMTP(mta.port) as s:
        s.send("HELO local\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<hkt-alice@example.test>\r\nDATA\r\nSubject: local\r\n\r\nx\r\n.\r\n")
        assert [s.reply() for _ in range(5)][-1].startswith("250 2.0.0 Ok: queued")
    data = mta.wait_mbox("hkt-alice", 2)
    assert b"Subject: early" not in data and b"Subject: proper" in data and b"Subject: local" in data


def test_strict_envelopes(make_mta):
    mta = make_mta("strict_rfc821_envelopes = yes")
    with RawSMTP(mta.port) as s:
        s.ehlo()
        assert s.command("MAIL FROM: <a@example.org>") == "501 5.5.4 Syntax: MAIL FROM:<address>"
        assert s.command("MAIL FROM:a@example.org") == "501 5.1.7 Bad sender address syntax"
        assert s.command("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@[999.1.1.1]>") == "501 5.1.3 Bad recipient address syntax"
        assert s.command("RCPT TO:hkt-alice@example.test") == "501 5.1.3 Bad recipient address syntax"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"


def write(mta, name, text):
    with open(os.path.join(mta.etc, name), "w") as f:
        f.write(text)


def greeting_from(mta, source="127.0.0.1"):
    with RawSMTP(mta.port, source=source) as s:
        return s.greeting


def test_tcp_wrappers_with_the_tutorials_hosts_allow(make_mta):
    mta = make_mta("smtpd_greet_pause = 0")
    # Written while running (the harness waits for a 220 at start): aliasd
    # notices the new file on the next check.
    write(mta, "hosts.deny", "# deny what is not allowed\nALL: ALL\n")
    deadline = time.time() + 10
    while greeting_from(mta) != f"554 5.7.1 {HOSTNAME} Access denied":
        assert time.time() < deadline, "hosts.deny change not picked up"
        time.sleep(0.3)
    mta.wait_log(r"NOQUEUE: reject: CONNECT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 .*Access denied")
    mta.wait_log(r"tcpwrappers: 127\.0\.0\.1 denied by \S+/etc/hosts\.deny:2")
    # The tutorial's file, exactly as written: aliasd sees the change.
    write(mta, "hosts.allow", "# hosts.allow This file describes the names of the hosts which are\n"
                              "# allowed to use the local INET services, as decided\n"
                              "# by the '/usr/sbin/tcpd' server.\n"
                              "sendmail:ALL\n")
    deadline = time.time() + 10
    while greeting_from(mta) != f"220 {HOSTNAME} ESMTP hikyaku":
        assert time.time() < deadline, "hosts.allow change not picked up"
        time.sleep(0.3)
    with RawSMTP(mta.port) as s:
        envelope(s)
        assert s.command("DATA").startswith("354 ")
        assert s.command("Subject: wrapped\r\n\r\nallowed\r\n.").startswith("250 ")
    mta.wait_mbox("hkt-alice", 1)


def test_tcp_wrappers_patterns_and_bad_lines(make_mta):
    mta = make_mta("smtpd_greet_pause = 0", start=False)
    write(mta, "hosts.allow", "smtpd: 127.0.0.3 : deny\nthis line is broken\n")
    write(mta, "hosts.deny", "sshd: ALL\nsmtpd, sendmail: 127.0.0.0/255.255.255.0 EXCEPT 127.0.0.1, 127.0.0.4\n"
                             "sendmail: UNKNOWN EXCEPT 127.0.0.4\n")
    mta.start()
    mta.wait_log(r"aliasd\[\d+\]: warning: \S+/etc/hosts\.allow:2: missing \":\" separator; line ignored")
    assert greeting_from(mta).startswith("220 ")                 # 127.0.0.1 is excepted
    assert greeting_from(mta, "127.0.0.2") == f"554 5.7.1 {HOSTNAME} Access denied"
    assert greeting_from(mta, "127.0.0.3") == f"554 5.7.1 {HOSTNAME} Access denied"  # the allow file's deny option
    # 127.0.0.4 is excepted from the first deny rule; the second names it
    # (as UNKNOWN: it has no name), waiting for the name lookup, and excepts it too.
    assert greeting_from(mta, "127.0.0.4").startswith("220 ")
    mta.wait_log(r"tcpwrappers: 127\.0\.0\.3 denied by \S+/etc/hosts\.allow:1")
