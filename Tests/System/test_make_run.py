"""`make run`'s script, as root and as an ordinary user, on a spare port."""
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

from conftest import BIN, TOP, free_port, mail_processes


def start_make_run(run_dir, port, user=None):
    env = dict(os.environ, HIKYAKU_RUN_DIR=run_dir, HIKYAKU_RUN_LISTEN=f"127.0.0.1:{port}", HIKYAKU_BIN=BIN)
    command = [os.path.join(TOP, "Packaging", "make-run.sh")]
    if user:
        entry = pwd.getpwnam(user)
        command = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"] + command
        env["HOME"] = entry.pw_dir
    log = open(os.path.join(os.path.dirname(run_dir), "make-run.log"), "wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(100).startswith(b"220 "):
                    return process
        except OSError:
            time.sleep(0.1)
    raise AssertionError("make run did not listen: " + open(log.name).read())


def stop(process, run_dir):
    process.send_signal(signal.SIGTERM)
    process.wait(20)
    config = os.path.join(run_dir, "etc", "hikyaku.conf")
    assert not mail_processes(config)


def run_and_deliver(user=None):
    parent = tempfile.mkdtemp(prefix="hikyaku-makerun-", dir="/tmp")
    os.chmod(parent, 0o755)
    run_dir = os.path.join(parent, "run")
    if user:
        os.makedirs(run_dir)
        shutil.chown(parent, user)
        shutil.chown(run_dir, user)
    port = free_port()
    process = start_make_run(run_dir, port, user)
    try:
        recipient = user or "hkt-bob"
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("a@example.org", [f"{recipient}@localhost"], "Subject: make run\r\n\r\nhello\r\n")
        box = os.path.join(run_dir, "mail", recipient)
        deadline = time.time() + 30
        while not (os.path.exists(box) and b"Subject: make run" in open(box, "rb").read()) and time.time() < deadline:
            time.sleep(0.1)
        assert b"Subject: make run" in open(box, "rb").read()
        log = open(os.path.join(parent, "make-run.log"), errors="replace").read()
        owners = {}
        config = os.path.join(run_dir, "etc", "hikyaku.conf")
        for pid in mail_processes(config):
            with open(f"/proc/{pid}/status") as f:
                uid = int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
            owners.setdefault(uid, 0)
            owners[uid] += 1
        return process, run_dir, box, log, owners
    except Exception:
        stop(process, run_dir)
        raise


def test_make_run_as_root_separates_privileges(users):
    process, run_dir, box, log, owners = run_and_deliver()
    try:
        assert "daemon started" in log and "without privilege separation" not in log
        assert set(owners) == {0, pwd.getpwnam("hikyaku").pw_uid}
        assert os.stat(box).st_uid == pwd.getpwnam("hkt-bob").pw_uid
    finally:
        stop(process, run_dir)


def test_make_run_as_an_ordinary_user_runs_everything_as_that_user(users):
    user = "hkt-carol"
    process, run_dir, box, log, owners = run_and_deliver(user)
    try:
        uid = pwd.getpwnam(user).pw_uid
        assert f"running as uid {uid} without privilege separation" in log
        assert set(owners) == {uid}
        assert os.stat(box).st_uid == uid
        # The user's own configuration works with the sendmail command: the
        # helper (setgid here, as the tests install it) gives up its group
        # and writes into the user's own spool.
        entry = pwd.getpwnam(user)
        config = os.path.join(run_dir, "etc", "hikyaku.conf")
        sent = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={entry.pw_gid}", "--init-groups", "--",
                               os.path.join(BIN, "sendmail"), "-C", config, "-i", user],
                              input=b"Subject: make run sendmail\n\nfrom the command\n",
                              env={"PATH": "/usr/bin:/bin", "HOME": entry.pw_dir}, capture_output=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        deadline = time.time() + 30
        while b"Subject: make run sendmail" not in open(box, "rb").read() and time.time() < deadline:
            time.sleep(0.1)
        data = open(box, "rb").read()
        assert b"from the command" in data and b"(hikyaku, from userid %d)" % uid in data
    finally:
        stop(process, run_dir)
