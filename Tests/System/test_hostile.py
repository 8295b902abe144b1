"""smtpd under hostile input: SMTP smuggling with every kind of bare line
ending, under both values of smtpd_forbid_bare_newline; over-long command
lines; a body ten times message_size_limit; ten thousand recipients in one
transaction; NUL bytes and bad UTF-8 in commands and in content; a thousand
idle sessions held open while mail still flows. smtpd's memory is read from
/proc: what a client sends must not pile up in it."""
import os
import re
import resource
import select
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, HOSTNAME
from smtpclient import RawSMTP

MiB = 1024 * 1024


def smtpd_pid(mta):
    """The one smtpd process (smtpd_process_limit is 1 in the tests)."""
    pids = mta.pids().get("smtpd", [])
    assert len(pids) == 1, mta.pids()
    return pids[0]


def memory_kib(pid, field):
    """VmRSS or VmHWM of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def server_closed(s, timeout=10):
    """True when the server has closed the connection (FIN or RST), with
    nothing more to read first."""
    s.sock.settimeout(timeout)
    try:
        rest = s.buffer + s.sock.recv(65536)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return rest == b""


def mbox_messages(data):
    """The messages of an mbox, each with its 'From ' line."""
    parts = re.split(rb"(?m)^(?=From )", data)
    return [p for p in parts if p.startswith(b"From ")]


def envelope_sender(message):
    from_line = message.split(b"\n", 1)[0]
    match = re.search(rb"(?m)^Return-Path: <([^>]*)>$", message)
    return from_line.split(b" ")[1], match.group(1) if match else None


# --- SMTP smuggling ----------------------------------------------------------

# A second transaction hidden in the content, for a server that would end
# the data at the bare line ending before it.
SMUGGLED = (b"MAIL FROM:<smuggled@evil.example>\r\n"
            b"RCPT TO:<hkt-bob@example.test>\r\n"
            b"DATA\r\n"
            b"Subject: smuggled\r\n"
            b"\r\n"
            b"smuggled body\r\n")

HEADER = b"Subject: smuggling test\r\n\r\nfirst line"

# (name, content before the smuggled transaction). Each is sent as the
# content of a DATA, followed by SMUGGLED and the real end, ".\r\n".
SMUGGLING_CASES = [
    ("LF.LF", HEADER + b"\n.\n"),
    ("LF.CRLF", HEADER + b"\n.\r\n"),
    ("CRLF.LF", HEADER + b"\r\n.\n"),
    ("CR.CR", HEADER + b"\r.\r"),
    ("CRLF NUL.CRLF", HEADER + b"\r\n\x00.\r\n"),
    ("CR.LF", HEADER + b"\r.\n"),
    ("LF.CR", HEADER + b"\n.\r"),
    ("CRLF.CR", HEADER + b"\r\n.\r"),
    ("CRLF.CRCRLF", HEADER + b"\r\n.\r\r\n"),
    ("CRLF.LFCRLF", HEADER + b"\r\n.\n\r\n"),
    ("LF..LF", HEADER + b"\n..\n"),
    ("dot LF at the start of the data", b".\n"),
    ("LF.LF then a smuggled end of LF.LF", HEADER + b"\n.\n" + SMUGGLED + b"\n.\n" + b"RSET\r\n"),
    ("every sequence one after the other",
     HEADER + b"\n.\n" + SMUGGLED + b"\n.\r\n" + SMUGGLED + b"\r\n.\n" + SMUGGLED + b"\r.\r" + SMUGGLED
     + b"\r\n\x00.\r\n" + SMUGGLED + b"\r.\n" + SMUGGLED + b"\r\n.\r" + SMUGGLED + b"\r\n.\r\r\n"),
]


def first_bare_line_ending(content):
    """'LF' or 'CR' for the first bare line ending in DATA content, or None."""
    for i, byte in enumerate(content):
        if byte == 10 and (i == 0 or content[i - 1] != 13):
            return "LF"
        if byte == 13 and (i + 1 == len(content) or content[i + 1] != 10):
            return "CR"
    return None


@pytest.mark.parametrize("policy", ["reject", "normalize"])
def test_smtp_smuggling_never_makes_a_second_message(make_mta, policy):
    mta = make_mta(f"smtpd_forbid_bare_newline = {policy}")
    accepted = []
    for n, (name, before) in enumerate(SMUGGLING_CASES):
        content = before + SMUGGLED + b".\r\n"
        # The test's own input: the one real end is the last five bytes.
        assert content.find(b"\r\n.\r\n") == len(content) - 5 and content.count(b"smuggled@evil") >= 1, name
        with RawSMTP(mta.port) as s:
            s.ehlo()
            assert s.command(f"MAIL FROM:<sender{n}@client.example>") == "250 2.1.0 Ok"
            assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
            assert s.command("DATA").startswith("354 ")
            s.send(content)
            reply = s.reply()
            bare = first_bare_line_ending(content)
            if policy == "reject" and bare:
                assert reply == f"550 5.5.2 Error: bare <{bare}> received; lines must end with <CR><LF>", (name, reply)
                assert server_closed(s), name
            else:
                # One reply for the whole content, then nothing but QUIT's:
                # none of the smuggled commands was answered.
                assert re.fullmatch(r"250 2\.0\.0 Ok: queued as \w+", reply), (name, reply)
                accepted.append(n)
                assert s.command("QUIT") == "221 2.0.0 Bye", name
    if policy == "reject":
        assert accepted == [4], "only the case without a bare line ending is accepted"
    else:
        assert len(accepted) == len(SMUGGLING_CASES)
    mta.wait_queue_empty()
    assert mta.queue_files("deferred") == [] and mta.queue_files("hold") == []
    data = mta.wait_mbox("hkt-alice", len(accepted))
    messages = mbox_messages(data)
    assert len(messages) == len(accepted)
    # Two local processes may deliver to one mailbox at once: the order in
    # the mbox need not be the order of sending.
    senders = sorted(envelope_sender(message) for message in messages)
    assert senders == sorted((f"sender{n}@client.example".encode(),) * 2 for n in accepted), senders
    for message in messages:
        # The smuggled commands are content of the one message.
        assert b"MAIL FROM:<smuggled@evil.example>\n" in message
    assert not os.path.exists(os.path.join(mta.mail, "hkt-bob")), "a smuggled message was delivered"
    log = mta.log()
    assert "from=<smuggled@evil.example>" not in log
    assert not re.search(r"to=<hkt-bob@", log)


# --- Over-long command lines -------------------------------------------------

def test_over_long_command_lines(make_mta):
    mta = make_mta()
    with RawSMTP(mta.port) as s:
        s.ehlo()
        # 100 KB without a line ending: refused as soon as it is too long,
        # and the rest of the line, whenever its end comes, is thrown away.
        s.send(b"MAIL FROM:<" + b"a" * 100_000)
        assert s.reply() == "500 5.5.2 Error: line too long"
        s.send(b"b" * 50_000 + b">\r\n")
        assert s.command("NOOP") == "250 2.0.0 Ok"
        # The same in one piece, with its line ending.
        s.send(b"RCPT TO:<" + b"c" * 100_000 + b">\r\nNOOP\r\n")
        assert s.reply() == "500 5.5.2 Error: line too long"
        assert s.reply() == "250 2.0.0 Ok"
        # The limit is 2048 bytes without the line ending.
        s.send(b"NOOP " + b"d" * 2043 + b"\r\n")
        assert s.reply() == "250 2.0.0 Ok"
        s.send(b"NOOP " + b"d" * 2044 + b"\r\n")
        assert s.reply() == "500 5.5.2 Error: line too long"
        # The session still carries mail.
        assert s.command("MAIL FROM:<long@client.example>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354 ")
        assert re.fullmatch(r"250 2\.0\.0 Ok: queued as \w+", s.command("Subject: after long lines\r\n\r\nhello\r\n."))
    assert b"Subject: after long lines" in mta.wait_mbox("hkt-alice", 1)
    mta.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] .*unknown=0/3")


def test_over_long_lines_count_towards_the_error_limit(make_mta):
    mta = make_mta("smtpd_hard_error_limit = 5")
    with RawSMTP(mta.port) as s:
        s.ehlo()
        for _ in range(4):
            s.send(b"x" * 10_000 + b"\r\n")
            assert s.reply() == "500 5.5.2 Error: line too long"
        s.send(b"x" * 10_000 + b"\r\n")
        assert s.reply() == "500 5.5.2 Error: line too long"
        assert s.reply() == f"421 4.7.0 {HOSTNAME} Error: too many errors"
        assert server_closed(s)


# --- A body far over message_size_limit ----------------------------------------

def test_a_100_mb_body_is_refused_without_being_held(make_mta):
    mta = make_mta("message_size_limit = 10240000")
    pid = smtpd_pid(mta)
    with RawSMTP(mta.port) as s:
        s.ehlo()
        assert s.command("MAIL FROM:<big@client.example> SIZE=104857600") == "552 5.3.4 Message size exceeds fixed limit"
        # Without SIZE the client is believed until the content says otherwise.
        assert s.command("MAIL FROM:<big@client.example>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354 ")
        before = memory_kib(pid, "VmRSS")
        s.send(b"Subject: big\r\n\r\n")
        chunk = (b"x" * 1022 + b"\r\n") * 64   # 64 KiB of 1 KiB lines
        peak = before
        for n in range(1600):                  # 100 MiB, never all in memory here
            s.sock.sendall(chunk)
            if n % 32 == 0:
                peak = max(peak, memory_kib(pid, "VmRSS"))
        s.send(b".\r\n")
        assert s.reply() == "552 5.3.4 Error: message file too big"
        hwm = memory_kib(pid, "VmHWM")
        growth = max(peak, hwm) - before
        print(f"smtpd VmRSS before {before} KiB, peak sampled {peak} KiB, VmHWM after {hwm} KiB")
        assert growth < 30 * 1024, f"smtpd grew by {growth} KiB while receiving 100 MiB"
        # The session goes on.
        assert s.command("NOOP") == "250 2.0.0 Ok"
        assert s.command("QUIT") == "221 2.0.0 Bye"
    time.sleep(0.5)
    assert all(mta.queue_files(q) == [] for q in ("incoming", "active", "deferred", "hold", "tmp")), \
        {q: mta.queue_files(q) for q in ("incoming", "active", "deferred", "hold", "tmp")}
    assert not os.path.exists(os.path.join(mta.mail, "hkt-alice"))


# --- Ten thousand recipients ---------------------------------------------------

def pipeline_recipients(s, total, batch=500):
    """Sends `total` RCPTs in pipelined batches; returns the replies and
    whether the server closed the connection."""
    replies = []
    for start in range(0, total, batch):
        lines = "".join(f"RCPT TO:<hkt-alice+{i}@example.test>\r\n" for i in range(start, min(total, start + batch)))
        try:
            s.send(lines)
        except OSError:
            return replies, True
        for _ in range(min(total, start + batch) - start):
            try:
                reply = s.reply()
            except ConnectionResetError:
                return replies, True
            if reply == "":
                return replies, True
            replies.append(reply)
            if reply.startswith("421 "):
                return replies, server_closed(s)
    return replies, False


def test_ten_thousand_recipients_end_the_session_at_the_error_limit(make_mta):
    mta = make_mta()  # smtpd_recipient_limit 1000, smtpd_hard_error_limit 20
    pid = smtpd_pid(mta)
    before = memory_kib(pid, "VmRSS")
    with RawSMTP(mta.port) as s:
        s.ehlo()
        assert s.command("MAIL FROM:<many@client.example>") == "250 2.1.0 Ok"
        replies, closed = pipeline_recipients(s, 10_000)
    assert replies[:1000] == ["250 2.1.5 Ok"] * 1000
    assert replies[1000:] == ["452 4.5.3 Error: too many recipients"] * 20 + [f"421 4.7.0 {HOSTNAME} Error: too many errors"]
    assert closed
    assert memory_kib(pid, "VmHWM") - before < 30 * 1024
    mta.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1000/1020 commands=1002/1022")


def test_ten_thousand_recipients_leave_the_session_usable(make_mta):
    mta = make_mta("smtpd_hard_error_limit = 100000")
    pid = smtpd_pid(mta)
    before = memory_kib(pid, "VmRSS")
    with RawSMTP(mta.port) as s:
        s.ehlo()
        assert s.command("MAIL FROM:<many@client.example>") == "250 2.1.0 Ok"
        replies, closed = pipeline_recipients(s, 10_000)
        assert not closed
        assert replies == ["250 2.1.5 Ok"] * 1000 + ["452 4.5.3 Error: too many recipients"] * 9000
        assert s.command("RSET") == "250 2.0.0 Ok"
        assert s.command("MAIL FROM:<after@client.example>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354 ")
        assert re.fullmatch(r"250 2\.0\.0 Ok: queued as \w+", s.command("Subject: after 10000\r\n\r\nstill here\r\n."))
    assert memory_kib(pid, "VmHWM") - before < 30 * 1024
    data = mta.wait_mbox("hkt-alice", 1)
    assert len(mbox_messages(data)) == 1 and b"Return-Path: <after@client.example>" in data


# --- NUL bytes and bad UTF-8 -------------------------------------------------

def test_nul_bytes_and_bad_utf8_in_commands(make_mta):
    mta = make_mta()
    with RawSMTP(mta.port) as s:
        assert s.command("EHLO client\x00.example.org") == "500 5.5.2 Error: bad syntax"
        s.ehlo()
        assert s.command("NOOP\x00") == "500 5.5.2 Error: bad syntax"
        assert s.command("\x00") == "500 5.5.2 Error: bad syntax"
        assert s.command("MAIL FROM:<nul\x00@client.example>") == "500 5.5.2 Error: bad syntax"
        s.send(b"MAIL FROM:<\xff\xfe@client.example>\r\n")
        assert s.reply() == "500 5.5.2 Error: bad UTF-8 syntax"
        s.send(b"EHLO caf\xc3\r\n")             # truncated sequence
        assert s.reply() == "500 5.5.2 Error: bad UTF-8 syntax"
        s.send(b"NOOP \xc0\xaf\r\n")           # overlong encoding of '/'
        assert s.reply() == "500 5.5.2 Error: bad UTF-8 syntax"
        s.send(b"RCPT TO:<\xed\xa0\x80@example.test>\r\n")   # a UTF-16 surrogate
        assert s.reply() == "500 5.5.2 Error: bad UTF-8 syntax"
        # Nothing of those started anything; the session still works.
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "503 5.5.1 Error: need MAIL command"
        assert s.command("MAIL FROM:<ok@client.example>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354 ")
        assert re.fullmatch(r"250 2\.0\.0 Ok: queued as \w+", s.command("Subject: after bad commands\r\n\r\nok\r\n."))
        assert s.command("QUIT") == "221 2.0.0 Bye"
    mta.wait_mbox("hkt-alice", 1)
    mta.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] .*commands=\d+/\d+")


def test_nul_bytes_and_bad_utf8_in_content_are_stored_intact(make_mta):
    mta = make_mta()
    body_lines = [
        b"NUL in the middle: a\x00b",
        b"\x00 a NUL first",
        b"ends with NUL \x00",
        b"latin-1, not UTF-8: caf\xe9 na\xefve",
        b"broken sequences: \xc3\x28 \xa0\xa1 \xe2\x28\xa1 \xf0\x28\x8c\x28 \xff\xfe",
        b"overlong and surrogate: \xc0\xaf \xed\xa0\x80",
        b"\x00.\x00",
    ]
    with RawSMTP(mta.port) as s:
        s.ehlo()
        assert s.command("MAIL FROM:<bytes@client.example> BODY=8BITMIME") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354 ")
        s.send(b"Subject: bytes\r\n\r\n" + b"\r\n".join(body_lines) + b"\r\n.\r\n")
        assert re.fullmatch(r"250 2\.0\.0 Ok: queued as \w+", s.reply())
    data = mta.wait_mbox("hkt-alice", 1)
    assert b"\n".join(body_lines) + b"\n" in data, data


# --- Many idle sessions ----------------------------------------------------------

def test_a_thousand_idle_sessions_while_mail_flows(make_mta):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 1000 + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need}")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    mta = make_mta()
    pid = smtpd_pid(mta)
    idle = []
    try:
        for n in range(1000):
            sock = socket.create_connection(("127.0.0.1", mta.port), timeout=60)
            idle.append(sock)
        for sock in idle:
            banner = b""
            while not banner.endswith(b"\r\n"):
                chunk = sock.recv(512)
                assert chunk, "closed before the greeting"
                banner += chunk
            assert banner.startswith(b"220 "), banner
            sock.sendall(b"EHLO idle.example.org\r\n")
        for sock in idle:
            reply = b""
            while not re.search(rb"(^|\n)250 [^\r\n]*\r\n", reply):
                chunk = sock.recv(4096)
                assert chunk, "closed after EHLO"
                reply += chunk
        # All thousand are held; a normal client gets through.
        started = time.monotonic()
        with mta.smtp() as client:
            client.sendmail("flow@client.example", ["hkt-alice@example.test"],
                            b"Subject: beside 1000 idle sessions\r\n\r\nhello\r\n")
        took = time.monotonic() - started
        assert took < 10, f"a message beside 1000 idle sessions took {took:.1f} s"
        assert b"beside 1000 idle sessions" in mta.wait_mbox("hkt-alice", 1)
        # The idle ones are all still there and answer.
        for sock in idle[::100]:
            sock.sendall(b"NOOP\r\n")
            assert sock.recv(100) == b"250 2.0.0 Ok\r\n"
        print(f"smtpd RSS with 1000 idle sessions: {memory_kib(pid, 'VmRSS')} KiB, message took {took:.2f} s")
    finally:
        for sock in idle:
            sock.close()


def open_file_limits(pid):
    """(soft, hard) RLIMIT_NOFILE of a process, from /proc/PID/limits."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError(f"no open file limit for {pid}")


def test_daemons_raise_their_open_file_limit(make_mta):
    """Started with a low soft limit (systemd gives services 1024), the
    programs that hold a descriptor per client raise it to the hard limit;
    local, which runs users' commands, keeps what it was given."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"hard open file limit {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        mta = make_mta()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    pids = mta.pids()
    assert open_file_limits(pids["master"][0])[0] == 256
    for program in ("smtpd", "cleanup", "qmgr", "aliasd"):
        assert open_file_limits(pids[program][0]) == (hard, hard), program
    if "local" in pids:
        assert open_file_limits(pids["local"][0])[0] == 256


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_more_clients_than_descriptors(make_mta):
    mta = make_mta(start=False)
    # A hard limit of 300 descriptors, which smtpd cannot raise.
    mta.output = open(os.path.join(mta.root, "master.out"), "ab")
    mta.process = subprocess.Popen(["prlimit", "--nofile=300:300", os.path.join(BIN, "master"), "-c", mta.config],
                                   stdout=mta.output, stderr=mta.output, start_new_session=True)
    mta.wait_ready()
    pid = smtpd_pid(mta)
    clients = []
    try:
        refused = 0
        for _ in range(400):
            try:
                clients.append(socket.create_connection(("127.0.0.1", mta.port), timeout=2))
            except OSError:
                # The listen queue is full: smtpd no longer accepts.
                refused += 1
                break
        time.sleep(1)
        before = cpu_seconds(pid)
        time.sleep(2)
        busy = (cpu_seconds(pid) - before) / 2
        # Every client has its greeting or its 421 by now, or within 3 s.
        answered, waiting = 0, {client.fileno(): client for client in clients}
        poller = select.poll()
        for fd in waiting:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + 3
        while waiting and time.monotonic() < deadline:
            for fd, _ in poller.poll(100):
                poller.unregister(fd)
                try:
                    answered += waiting.pop(fd).recv(100)[:4] in (b"220 ", b"421 ")
                except OSError:
                    pass
    finally:
        for client in clients:
            client.close()
    assert busy < 0.5, f"smtpd used {busy:.0%} of a CPU with its descriptors exhausted"
    assert refused == 0 and answered == len(clients), \
        f"{len(clients) - answered} of {len(clients)} clients got neither 220 nor 421; then a connection timed out: {bool(refused)}"
    # The condition is logged, once (at most once a minute), with what to do.
    mta.wait_log(r"smtpd.*out of file descriptors accepting connections .*raise the open file limit", timeout=5)
    assert len(re.findall("out of file descriptors", mta.log())) == 1, mta.log()


# --- What a client sends while smtpd waits --------------------------------------

def stream_without_reading(sock, total, chunk, give_up=5.0):
    """Sends up to `total` bytes of `chunk`s; stops when the peer stops
    reading (nothing could be sent for `give_up` seconds). Returns the
    number of bytes sent."""
    sock.settimeout(give_up)
    sent = 0
    try:
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    except (socket.timeout, OSError):
        pass
    return sent


def test_input_is_not_held_without_bound_while_smtpd_waits(make_mta):
    mta = make_mta()
    pid = smtpd_pid(mta)
    aliasd = mta.pids()["aliasd"][0]
    with RawSMTP(mta.port) as s:
        s.ehlo()
        assert s.command("MAIL FROM:<waiting@client.example>") == "250 2.1.0 Ok"
        before = memory_kib(pid, "VmRSS")
        # aliasd answers slowly (stopped here; in life a busy map, a slow
        # DNS answer for the client's name, Dovecot's delay after a failed
        # AUTH): the RCPT waits, and the client goes on sending.
        os.kill(aliasd, signal.SIGSTOP)
        try:
            s.send("RCPT TO:<hkt-alice@example.test>\r\n")
            sent = stream_without_reading(s.sock, 100 * MiB, b"y" * 65536)
            growth = memory_kib(pid, "VmRSS") - before
        finally:
            os.kill(aliasd, signal.SIGCONT)
    assert growth < 30 * 1024, f"smtpd took {sent // MiB} MiB from the client while waiting and grew by {growth // 1024} MiB"


def test_replies_a_client_does_not_read_are_not_held_without_bound(make_mta):
    """A client that pipelines commands and never reads the replies: smtpd
    stops reading once its unsent replies pass the channel's high-water
    mark, so neither the input nor the output piles up in memory."""
    mta = make_mta()
    pid = smtpd_pid(mta)
    with RawSMTP(mta.port) as s:
        s.ehlo()
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        before = memory_kib(pid, "VmRSS")
        sent = stream_without_reading(s.sock, 30 * MiB, b"NOOP\r\n" * 10000)
        print(f"sent {sent / MiB:.1f} MiB")
        time.sleep(0.5)
        growth = memory_kib(pid, "VmRSS") - before
    assert sent < 20 * MiB, f"smtpd took {sent // MiB} MiB of commands whose replies were never read"
    assert growth < 30 * 1024, f"smtpd grew by {growth // 1024} MiB holding replies nobody read"


def test_content_is_not_held_without_bound_when_cleanup_is_slow(make_mta):
    mta = make_mta("message_size_limit = 0")
    pid = smtpd_pid(mta)
    cleanup = mta.pids()["cleanup"][0]
    with RawSMTP(mta.port) as s:
        s.ehlo()
        assert s.command("MAIL FROM:<slow@client.example>") == "250 2.1.0 Ok"
        assert s.command("RCPT TO:<hkt-alice@example.test>") == "250 2.1.5 Ok"
        assert s.command("DATA").startswith("354 ")
        before = memory_kib(pid, "VmRSS")
        os.kill(cleanup, signal.SIGSTOP)
        try:
            sent = stream_without_reading(s.sock, 100 * MiB, (b"z" * 1022 + b"\r\n") * 64)
            time.sleep(0.5)
            growth = memory_kib(pid, "VmRSS") - before
        finally:
            os.kill(cleanup, signal.SIGCONT)
    assert growth < 30 * 1024, f"smtpd took {sent // MiB} MiB of content cleanup had not read and grew by {growth // 1024} MiB"
