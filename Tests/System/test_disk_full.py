"""A full spool filesystem and an unwritable mailbox: smtpd refuses with
452 4.3.1 while the spool is full and takes mail again by itself once
there is room; a mailbox local cannot write is deferred, never bounced,
and delivered once it can be written. Nothing answered 250 is lost."""
import os
import smtplib
import subprocess
import time

import pytest

from conftest import BIN, HOSTNAME


def fill(path):
    """Writes zeros to `path` until the filesystem is full."""
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=64k"], capture_output=True)


def try_send(port, subject, size=2000):
    """(code, text) of the first refusal, or (250, queued text)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.org")
        code, text = client.mail("sender@example.org")
        if code != 250:
            return code, text.decode()
        code, text = client.rcpt(f"hkt-alice@{HOSTNAME}")
        if code != 250:
            return code, text.decode()
        code, text = client.data(f"Subject: {subject}\r\n\r\n" + "x" * size + "\r\n")
        return code, text.decode()


@pytest.fixture
def tmpfs_spool(make_mta):
    mounted = []

    def factory(size="16m"):
        mta = make_mta(start=False)
        os.makedirs(mta.spool, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", mta.spool], check=True)
        mounted.append(mta)
        mta.start()
        return mta

    yield factory
    for mta in mounted:
        try:
            mta.stop()
        finally:
            subprocess.run(["umount", "-l", mta.spool], capture_output=True)


def test_full_spool_gets_452_and_recovers_by_itself(tmpfs_spool):
    mta = tmpfs_spool()
    assert try_send(mta.port, "before")[0] == 250
    mta.wait_mbox("hkt-alice", 1)
    ballast = os.path.join(mta.spool, "ballast")
    fill(ballast)
    refusals = []
    for n in range(3):
        code, text = try_send(mta.port, f"while full {n}", size=64 * 1024)
        refusals.append((code, text))
    # Never 250 while there is no room: each attempt is refused with
    # Insufficient system storage (at MAIL, or at the end of DATA when the
    # file could not be written), and with a temporary code.
    for code, text in refusals:
        assert code == 452 and text.startswith("4.3.1 ") and "Insufficient system storage" in text, refusals
    mta.wait_log(r"hikyaku/(smtpd|cleanup)\[\d+\]: .*(No space left on device|Insufficient system storage|insufficient)")
    # Room again: accepted at once, without a restart.
    os.unlink(ballast)
    deadline = time.monotonic() + 30
    while True:
        code, text = try_send(mta.port, "after")
        if code == 250 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert code == 250, text
    box = mta.wait_mbox("hkt-alice", 2)
    assert b"Subject: before" in box and b"Subject: after" in box and b"while full" not in box
    # No half-written file stays behind in tmp/.
    assert os.listdir(os.path.join(mta.spool, "tmp")) == []


def test_unwritable_mailbox_defers_and_delivers_later(make_mta):
    mta = make_mta()
    box = os.path.join(mta.mail, "hkt-alice")
    with open(box, "w"):
        pass
    # Owned by root, mode 0600: delivery as hkt-alice cannot write it.
    os.chown(box, 0, 0)
    os.chmod(box, 0o600)
    assert try_send(mta.port, "unwritable")[0] == 250
    mta.wait_log(r"to=<hkt-alice@mail\.example\.test>, relay=local, .*dsn=4\.\d\.\d, status=deferred")
    assert "status=bounced" not in mta.log()
    assert os.path.getsize(box) == 0
    # Repaired: the next try delivers it.
    import pwd
    entry = pwd.getpwnam("hkt-alice")
    os.chown(box, entry.pw_uid, entry.pw_gid)
    subprocess.run([os.path.join(BIN, "hikyaku"), "queue", "flush", "-c", mta.config], check=True,
                   capture_output=True, timeout=60)
    assert b"Subject: unwritable" in mta.wait_mbox("hkt-alice", 1)
    assert "status=bounced" not in mta.log()
