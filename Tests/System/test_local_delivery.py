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


def concurrent_starts(make_mta, config_extra):
    """Six messages to an alias whose command takes 2 s: how many of the
    commands had started 1.5 s after the first did."""
    out = os.path.join("/tmp", f"hikyaku-concurrency-{os.getpid()}-{time.time_ns()}")
    os.makedirs(out)
    os.chmod(out, 0o1777)
    command = f"|/bin/sh -c 'date +%s.%N >> {out}/starts; sleep 2'"
    mta = make_mta(config_extra=config_extra, aliases=f"postmaster: root\nslowq: \"{command}\"\n")
    with mta.smtp() as s:
        for n in range(6):
            s.sendmail("hkt-alice@example.test", ["slowq@example.test"], f"Subject: {n}\r\n\r\nbody\r\n")
    mta.wait_queue_empty(60)
    starts = sorted(float(line) for line in open(os.path.join(out, "starts")))
    assert len(starts) == 6
    return sum(1 for t in starts if t - starts[0] < 1.5)


def test_deliveries_to_one_maildir_user_run_on_every_local_process(make_mta):
    # Maildir deliveries do not lock each other: all four local processes
    # (local_process_limit) work for the same user at once...
    assert concurrent_starts(make_mta, "home_mailbox = Maildir/\n") == 4


def test_deliveries_to_one_mbox_user_are_limited(make_mta):
    # ...while an mbox user gets local_destination_concurrency_limit (2).
    assert concurrent_starts(make_mta, "") == 2
    assert concurrent_starts(make_mta, "local_destination_concurrency_limit = 3\n") == 3
