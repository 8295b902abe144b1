"""The master under systemd: the notification protocol (sd_notify(3)) on a
datagram socket the test owns, and socket activation through
systemd-socket-activate, which passes a listening socket the way systemd
does (LISTEN_FDS, LISTEN_PID)."""
import json
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from conftest import BIN, HOSTNAME, free_port


class Notifications:
    """The datagram socket a service manager listens on."""

    def __init__(self, root):
        self.path = os.path.join(root, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen = []

    def next(self, timeout=30, skip_watchdog=True):
        """The next message (its KEY=VALUE fields as a dict), skipping
        watchdog pings unless asked for them."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no notification within {timeout} s; seen: {self.seen}")
            self.sock.settimeout(left)
            text = self.sock.recv(4096).decode()
            self.seen.append(text)
            fields = dict(line.split("=", 1) for line in text.split("\n") if "=" in line)
            if skip_watchdog and list(fields) == ["WATCHDOG"]:
                continue
            return fields

    def close(self):
        self.sock.close()


def greets_at_once(port):
    """A client connecting now is greeted, with no retry."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(5)
        return s.recv(100).startswith(b"220 ")


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f.read().split(b"\0")


def test_notify_ready_reloading_watchdog_stopping(make_mta):
    mta = make_mta(start=False)
    notes = Notifications(mta.root)
    try:
        mta.output = open(os.path.join(mta.root, "master.out"), "ab")
        env = dict(os.environ, NOTIFY_SOCKET=notes.path, WATCHDOG_USEC="400000")
        mta.process = subprocess.Popen([os.path.join(BIN, "master"), "-c", mta.config], env=env,
                                       stdout=mta.output, stderr=mta.output, start_new_session=True)
        # The first state is READY=1, sent only when every program serves:
        # a client connecting right then is greeted at once.
        ready = notes.next()
        assert ready.get("READY") == "1", notes.seen
        assert ready["MAINPID"] == str(mta.process.pid)
        assert ready["STATUS"].endswith(" 0 messages in the queue"), ready
        assert greets_at_once(mta.port)
        # The programs the master starts do not see systemd's variables.
        pids = mta.pids()
        for program in ("smtpd", "qmgr", "local"):
            assert not [v for v in environ_of(pids[program][0]) if v.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_"))]

        # WATCHDOG=1 at half of WATCHDOG_USEC.
        started, pings = time.monotonic(), 0
        while time.monotonic() - started < 2:
            if notes.next(timeout=2, skip_watchdog=False).get("WATCHDOG") == "1":
                pings += 1
        assert 6 <= pings <= 14, f"{pings} watchdog pings in 2 s at WATCHDOG_USEC=400000"

        # SIGHUP: RELOADING=1, then READY=1 once the new programs serve.
        mta.process.send_signal(signal.SIGHUP)
        reloading = notes.next()
        assert reloading.get("RELOADING") == "1", notes.seen
        assert int(reloading["MONOTONIC_USEC"]) > 0
        ready = notes.next()
        assert ready.get("READY") == "1", notes.seen
        assert greets_at_once(mta.port)

        # A reload with a broken configuration: the running programs go on,
        # and systemd hears READY=1 again at once with the reason.
        with open(mta.config, "a") as f:
            f.write("message_size_limit = lots\n")
        mta.process.send_signal(signal.SIGHUP)
        assert notes.next().get("RELOADING") == "1"
        ready = notes.next()
        assert ready.get("READY") == "1" and ready["STATUS"].startswith("reload failed: "), ready

        # SIGTERM: STOPPING=1.
        mta.process.send_signal(signal.SIGTERM)
        assert notes.next().get("STOPPING") == "1", notes.seen
        mta.process.wait(20)
    finally:
        notes.close()


def test_status_counts_the_queue(make_mta):
    mta = make_mta(f"smart_host = [127.0.0.1]:{free_port()}\n", start=False)
    notes = Notifications(mta.root)
    try:
        mta.output = open(os.path.join(mta.root, "master.out"), "ab")
        env = dict(os.environ, NOTIFY_SOCKET=notes.path)
        mta.process = subprocess.Popen([os.path.join(BIN, "master"), "-c", mta.config], env=env,
                                       stdout=mta.output, stderr=mta.output, start_new_session=True)
        assert notes.next().get("READY") == "1"
        # Two messages for a host that does not answer stay in the queue.
        with smtplib.SMTP("127.0.0.1", mta.port) as client:
            for n in range(2):
                client.sendmail("a@example.org", ["someone@remote.example"], f"Subject: {n}\r\n\r\nx\r\n")
        mta.process.send_signal(signal.SIGHUP)
        assert notes.next().get("RELOADING") == "1"
        ready = notes.next()
        assert ready["STATUS"].endswith(" 2 messages in the queue"), ready
    finally:
        notes.close()


ACTIVATE = shutil.which("systemd-socket-activate")


@pytest.mark.skipif(ACTIVATE is None, reason="systemd-socket-activate is not installed (Debian package systemd)")
def test_socket_activation(make_mta):
    mta = make_mta(start=False)
    notes = Notifications(mta.root)
    activated = free_port()
    try:
        mta.output = open(os.path.join(mta.root, "master.out"), "ab")
        # systemd-socket-activate binds the port, and execs the master on
        # the first connection with the socket as fd 3 (LISTEN_FDS=1).
        mta.process = subprocess.Popen(
            [ACTIVATE, "-l", f"127.0.0.1:{activated}", "-E", f"NOTIFY_SOCKET={notes.path}",
             os.path.join(BIN, "master"), "-c", mta.config],
            stdout=mta.output, stderr=mta.output, start_new_session=True)
        time.sleep(0.5)
        first = socket.create_connection(("127.0.0.1", activated), timeout=30)
        assert notes.next().get("READY") == "1", notes.seen
        first.settimeout(30)
        assert first.recv(100).startswith(b"220 ")
        first.close()
        mta.wait_log(rf"master\[\d+\]: socket activation: 127\.0\.0\.1:{activated} \(smtp\) passed by systemd")
        # The passed socket takes the place of smtpd_listen: that port is not bound.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", mta.port), timeout=5)
        with smtplib.SMTP("127.0.0.1", activated) as client:
            client.sendmail("a@example.org", [f"hkt-alice@{HOSTNAME}"], "Subject: activated\r\n\r\nx\r\n")
        assert b"Subject: activated" in mta.wait_mbox("hkt-alice", 1)
        # A reload keeps the passed socket.
        mta.process.send_signal(signal.SIGHUP)
        assert notes.next().get("RELOADING") == "1"
        assert notes.next().get("READY") == "1"
        assert greets_at_once(activated)
    finally:
        notes.close()


JOURNALD = "/lib/systemd/systemd-journald"


@pytest.fixture
def journald():
    """A listening journal: the host's, or a systemd-journald started here
    (on a host where systemd is not PID 1), stopped afterwards."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect("/run/systemd/journal/socket")
        yield
        return
    except OSError:
        pass
    finally:
        probe.close()
    if not os.path.exists(JOURNALD) or not shutil.which("journalctl"):
        pytest.skip("no journal and no systemd-journald to start (Debian package systemd)")
    process = subprocess.Popen([JOURNALD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                probe.connect("/run/systemd/journal/socket")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            finally:
                probe.close()
        yield
    finally:
        process.terminate()
        process.wait(10)


def journal_entries(identifier, since):
    out = subprocess.run(["journalctl", "--no-pager", "-o", "json", "--since", since,
                          f"SYSLOG_IDENTIFIER={identifier}"], capture_output=True, text=True, timeout=30)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_logs_to_the_journal_with_fields_under_systemd(make_mta, journald):
    # No maillog_file: under systemd (INVOCATION_ID set) the journal.
    mta = make_mta(start=False)
    with open(mta.config, "a") as f:
        f.write("maillog_file =\nsyslog_name = hikyaku-journal-test\n")
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 2))
    mta.output = open(os.path.join(mta.root, "master.out"), "ab")
    env = dict(os.environ, INVOCATION_ID=os.urandom(16).hex())
    mta.process = subprocess.Popen([os.path.join(BIN, "master"), "-c", mta.config], env=env,
                                   stdout=mta.output, stderr=mta.output, start_new_session=True)
    mta.wait_ready()
    with smtplib.SMTP("127.0.0.1", mta.port) as client:
        client.sendmail("a@example.org", [f"hkt-alice@{HOSTNAME}"], "Subject: journal\r\n\r\nx\r\n")
    mta.wait_mbox("hkt-alice", 1)
    deadline = time.monotonic() + 20
    while True:
        smtpd = journal_entries("hikyaku-journal-test/smtpd", since)
        local = journal_entries("hikyaku-journal-test/local", since)
        received = [e for e in smtpd if ": client=" in e.get("MESSAGE", "")]
        delivered = [e for e in local if "status=sent" in e.get("MESSAGE", "")]
        if received and delivered or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert received and delivered, (smtpd, local)
    queue_id = received[0]["MESSAGE"].split(":")[0]
    assert received[0]["QUEUE_ID"] == queue_id
    assert received[0]["SYSLOG_FACILITY"] == "2" and received[0]["PRIORITY"] == "6"
    assert int(received[0]["SYSLOG_PID"]) in mta.pids()["smtpd"]
    assert delivered[0]["QUEUE_ID"] == queue_id
    # Nothing went to the file or to syslog's socket instead.
    assert not os.path.exists(mta.maillog) or ": client=" not in mta.log()
