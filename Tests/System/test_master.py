"""The master: restarts, reload and stop."""
import os
import re
import signal
import socket
import time

from conftest import BIN, HOSTNAME, mail_processes
from smtpclient import RawSMTP


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def send(mta, user="hkt-alice", subject="x"):
    with mta.smtp() as client:
        client.sendmail("a@example.org", [f"{user}@example.test"], f"Subject: {subject}\r\n\r\nbody\r\n")


def test_a_killed_program_is_restarted_and_logged(mta):
    old = mta.pids()["smtpd"][0]
    os.kill(old, signal.SIGKILL)
    mta.wait_log(rf"hikyaku/master\[\d+\]: warning: process {re.escape(BIN)}/smtpd pid {old} killed by signal 9")
    new = wait_for(lambda: [p for p in mta.pids().get("smtpd", []) if p != old], what="a new smtpd")
    assert new
    mta.wait_ready()
    send(mta, subject="after restart")
    mta.wait_mbox("hkt-alice", 1)


def test_a_program_that_keeps_failing_is_restarted_with_growing_delays(make_mta):
    mta = make_mta(start=False)
    # A daemon directory whose cleanup fails at once, as a broken install would.
    programs = os.path.join(mta.root, "programs")
    os.makedirs(programs)
    for name in ("master", "smtpd", "qmgr", "local", "aliasd", "pickup", "showq", "smtp-client", "hikyaku-drop"):
        os.symlink(os.path.join(BIN, name), os.path.join(programs, name))
    broken = os.path.join(programs, "cleanup")
    with open(broken, "w") as f:
        f.write("#!/bin/sh\nexit 1\n")
    os.chmod(broken, 0o755)
    mta.write_config(f"daemon_directory = {programs}")
    mta.start()
    mta.wait_log(rf"warning: process {re.escape(programs)}/cleanup pid \d+ exit status 1")
    mta.wait_log(r"cleanup: restarting in 0\.1 s")
    mta.wait_log(r"cleanup: restarting in 0\.2 s")
    mta.wait_log(r"cleanup: restarting in 0\.4 s")
    # Other programs are untouched meanwhile; once cleanup is fixed, mail flows.
    assert "smtpd" in mta.pids() and "qmgr" in mta.pids()
    os.unlink(broken)
    os.symlink(os.path.join(BIN, "cleanup"), broken)
    wait_for(lambda: mta.pids().get("cleanup"), timeout=40, what="cleanup back")
    send(mta)
    mta.wait_mbox("hkt-alice", 1)


def test_sigterm_stops_every_program(mta):
    pids = mail_processes(mta.config)
    assert len(pids) >= 6
    mta.stop()
    assert mta.process.returncode == 0
    wait_for(lambda: not mail_processes(mta.config), timeout=15, what="all programs to exit")
    assert not os.path.exists(os.path.join(mta.spool, "pid", "master.pid"))


def test_sighup_takes_new_configuration_without_dropping_an_accepted_message(mta):
    # A transaction that is under way when the reload comes ...
    s = RawSMTP(mta.port)
    s.ehlo()
    assert s.command("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
    assert s.command("RCPT TO:<hkt-bob@example.test>") == "250 2.1.5 Ok"
    assert s.command("DATA").startswith("354 ")
    s.send("Subject: before reload\r\n\r\nfirst half\r\n")
    old = mta.pids()
    with open(mta.config, "a") as f:
        f.write("smtpd_banner = $myhostname ESMTP reloaded\n")
    mta.reload()
    mta.wait_log(r"reload -- version")
    # ... new sessions get the new configuration ...
    def new_banner():
        with RawSMTP(mta.port) as t:
            return t.greeting == f"220 {HOSTNAME} ESMTP reloaded"
    wait_for(new_banner, what="the new banner")
    # ... and the old one finishes on the old process and is delivered.
    s.send("second half\r\n.\r\n")
    assert s.reply().startswith("250 2.0.0 Ok: queued as ")
    assert s.command("QUIT") == "221 2.0.0 Bye"
    s.close()
    data = mta.wait_mbox("hkt-bob", 1)
    assert b"first half\nsecond half\n" in data
    # Every program was replaced, and the old ones are gone.
    def replaced():
        now = mta.pids()
        return all(not set(old[name]) & set(now.get(name, [])) for name in old if name != "master") and now
    now = wait_for(replaced, what="old programs to exit")
    assert set(now) >= {"smtpd", "cleanup", "qmgr", "local", "aliasd"}
    send(mta, user="hkt-carol", subject="after reload")
    mta.wait_mbox("hkt-carol", 1)


def set_listen(mta, addresses):
    with open(mta.config) as f:
        text = f.read()
    text = re.sub(r"(?m)^smtpd_listen = .*$", f"smtpd_listen = {addresses}", text)
    with open(mta.config, "w") as f:
        f.write(text)


def banner(host, port):
    try:
        with socket.create_connection((host, port), timeout=5) as c:
            return c.recv(100).startswith(b"220 ")
    except OSError:
        return False


def test_a_reload_can_move_the_listening_address(mta):
    # 127.0.0.1:P to 0.0.0.0:P: the wildcard cannot be bound while the old
    # smtpd still listens on the loopback address, so the old generation
    # must let go first; a session it holds finishes on it all the same.
    s = RawSMTP(mta.port)
    s.ehlo()
    assert s.command("MAIL FROM:<a@example.org>") == "250 2.1.0 Ok"
    assert s.command("RCPT TO:<hkt-bob@example.test>") == "250 2.1.5 Ok"
    set_listen(mta, f"0.0.0.0:{mta.port}")
    mta.reload()
    mta.wait_log(r"reload -- version")
    wait_for(lambda: banner("127.0.0.2", mta.port), what="smtpd on 0.0.0.0")
    assert s.command("DATA").startswith("354 ")
    s.send("Subject: moved\r\n\r\nbody\r\n.\r\n")
    assert s.reply().startswith("250 2.0.0 Ok: queued as ")
    s.close()
    mta.wait_mbox("hkt-bob", 1)
    # Still serving after a while: no crash loop of smtpd.
    time.sleep(1.5)
    assert banner("127.0.0.2", mta.port)
    assert "cannot listen" not in mta.log()
    assert not re.search(r"smtpd pid \d+ (exit|kill|sign)", mta.log())


def test_an_address_a_reload_cannot_bind_is_retried_and_the_others_serve(mta):
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    other = taken.getsockname()[1]
    try:
        set_listen(mta, f"127.0.0.1:{mta.port}, 127.0.0.1:{other}")
        mta.reload()
        mta.wait_log(rf"warning: cannot listen on 127\.0\.0\.1:{other}: .*(in use|EADDRINUSE).*; trying again")
        # The address that could be bound serves meanwhile.
        wait_for(lambda: banner("127.0.0.1", mta.port), what="smtpd on the free address")
        send(mta, user="hkt-carol", subject="meanwhile")
        mta.wait_mbox("hkt-carol", 1)
    finally:
        taken.close()
    mta.wait_log(rf"listening on 127\.0\.0\.1:{other}$")
    wait_for(lambda: banner("127.0.0.1", other), what="smtpd on the freed address")
    assert banner("127.0.0.1", mta.port)


def test_a_broken_configuration_on_reload_keeps_the_old_one(mta):
    with open(mta.config, "a") as f:
        f.write("message_size_limit = lots\n")
    mta.reload()
    mta.wait_log(r"warning: reload: .*hikyaku\.conf, line \d+: message_size_limit: expected a size in bytes, found 'lots'; keeping the running configuration")
    send(mta)
    mta.wait_mbox("hkt-alice", 1)


def test_children_exit_when_the_master_is_killed(mta):
    children = [p for p in mail_processes(mta.config) if p != mta.process.pid]
    mta.process.send_signal(signal.SIGKILL)
    mta.process.wait()
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"
                             for p in children), timeout=20, what="children to exit")
    # A new master takes over the same spool and port.
    mta.start()
    send(mta)
    mta.wait_mbox("hkt-alice", 1)
