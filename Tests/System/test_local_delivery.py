"""Mailbox locking as other mail programs do it, and a full disk."""
import fcntl
import os
import pwd
import subprocess
import time

import pytest


def send(mta, subject, user="hkt-alice"):
    with mta.smtp() as client:
        client.sendmail("a@example.org", [f"{user}@example.test"], f"Subject: {subject}\r\n\r\nbody\r\n")


def test_a_dotlock_made_by_liblockfile_is_waited_for(make_mta):
    mta = make_mta()
    send(mta, "first")
    mta.wait_mbox("hkt-alice", 1)
    lock = os.path.join(mta.mail, "hkt-alice.lock")
    # dotlockfile (liblockfile) holds the lock as a mail reader would.
    subprocess.run(["dotlockfile", "-l", "-p", lock], check=True)
    try:
        send(mta, "second")
        time.sleep(1.5)
        assert mta.mbox("hkt-alice").count(b"Subject: second") == 0
    finally:
        subprocess.run(["dotlockfile", "-u", lock], check=True)
    mta.wait_mbox("hkt-alice", 2)
    assert not os.path.exists(lock)


def test_an_fcntl_lock_is_waited_for(make_mta):
    mta = make_mta()
    send(mta, "first")
    mta.wait_mbox("hkt-alice", 1)
    with open(os.path.join(mta.mail, "hkt-alice"), "rb+") as box:
        fcntl.lockf(box, fcntl.LOCK_EX)
        send(mta, "second")
        time.sleep(1.5)
        assert mta.mbox("hkt-alice").count(b"Subject: second") == 0
        fcntl.lockf(box, fcntl.LOCK_UN)
    mta.wait_mbox("hkt-alice", 2)


def test_a_dotlock_left_by_a_dead_process_is_removed(make_mta):
    mta = make_mta()
    lock = os.path.join(mta.mail, "hkt-bob.lock")
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open(lock, "w") as f:
        f.write(f"{dead.pid}\n")
    send(mta, "through", user="hkt-bob")
    mta.wait_mbox("hkt-bob", 1, timeout=10)
    assert not os.path.exists(lock)


def test_a_full_mail_spool_defers_and_leaves_the_mailbox_whole(make_mta):
    mta = make_mta("minimal_backoff_time = 1s\nqueue_run_delay = 1s", start=False)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=2775,gid=mail", "hikyaku-test", mta.mail], check=True)
    try:
        mta.start()
        send(mta, "small")
        before = mta.wait_mbox("hkt-alice", 1)
        filler = os.path.join(mta.mail, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 1024)
        except OSError:
            pass
        finally:
            os.close(fd)
        # A message larger than the space left: the append fails part way.
        with mta.smtp() as client:
            client.sendmail("a@example.org", ["hkt-alice@example.test"],
                            "Subject: big\r\n\r\n" + ("y" * 70 + "\r\n") * 2000)
        mta.wait_log(r"to=<hkt-alice@example\.test>, relay=local, .*dsn=4\.2\.2, status=deferred \(cannot append to mailbox")
        # Truncated back: the mailbox is exactly what it was.
        assert mta.mbox("hkt-alice") == before
        assert mta.queue_files("deferred")
        os.unlink(filler)
        data = mta.wait_mbox("hkt-alice", 2, timeout=30)
        assert data.startswith(before) and b"Subject: big" in data
        mta.wait_queue_empty()
        mta.stop()
    finally:
        subprocess.run(["umount", mta.mail])
