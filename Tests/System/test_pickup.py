"""pickup: what happens to a maildrop file the queue will not take. A
permanent refusal, or a file that has waited maximal_queue_lifetime, comes
back to its submitter as a non-delivery notice, then goes to corrupt/; a
file that cannot be queued yet waits, tried less and less often, logged
once per reason."""
import os
import pwd
import re
import shutil
import time

from conftest import HOSTNAME
from test_queue_tools import maildrop_file


def drop(mta, user, data, mode=0o644):
    """Puts a file into maildrop/ as hikyaku-drop would, owned by `user`."""
    name = f"{int(time.time())}.000000.{os.getpid()}.test{len(os.listdir(os.path.join(mta.spool, 'maildrop')))}"
    temporary = os.path.join(mta.spool, "maildrop", "." + name)
    with open(temporary, "wb") as f:
        f.write(data)
    shutil.chown(temporary, user, "hikyaku-drop")
    os.chmod(temporary, mode)
    os.rename(temporary, os.path.join(mta.spool, "maildrop", name))
    return name


def wait_corrupt(mta, name, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if "maildrop." + name in mta.queue_files("corrupt"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} never reached corrupt/:\n" + mta.log()[-3000:])


def test_a_message_cleanup_refuses_for_good_comes_back_to_its_submitter(mta):
    hops = b"Received: x\n" * 100 + b"Subject: in a loop\n\nround and round\n"
    name = drop(mta, "hkt-alice", maildrop_file(["hkt-bob", "carol@elsewhere.example"], hops))
    notice = mta.wait_mbox("hkt-alice", 1).decode()
    wait_corrupt(mta, name)
    assert not os.path.exists(os.path.join(mta.mail, "hkt-bob"))
    assert "Return-Path: <>" in notice and "Subject: Undelivered Mail Returned to Sender" in notice
    assert f"From: MAILER-DAEMON@{HOSTNAME} (Mail Delivery System)" in notice
    assert "could not be queued,\nand was not delivered to any of its recipients." in notice
    assert "The mail system said: 554 5.4.6 Error: too many hops" in notice
    assert f"Final-Recipient: rfc822; hkt-bob@{HOSTNAME}\nAction: failed\nStatus: 5.4.6\n" in notice
    assert "Final-Recipient: rfc822; carol@elsewhere.example\n" in notice
    assert f"X-Hikyaku-Maildrop-File: {name}\n" in notice
    assert "Content-Type: message/rfc822" in notice and "round and round" in notice
    mta.wait_log(rf"pickup\[\d+\]: warning: {re.escape(name)}: cleanup refused it: 554 5\.4\.6 Error: too many hops; "
                 rf"returned to <hkt-alice@{re.escape(HOSTNAME)}> as \w+; moved to corrupt/")


def test_a_message_too_big_for_the_queue_comes_back_with_its_header_only(make_mta):
    mta = make_mta(config_extra="message_size_limit = 2000")
    big = b"Subject: huge\nX-Tag: kept\n\n" + (b"z" * 99 + b"\n") * 700
    name = drop(mta, "hkt-carol", maildrop_file(["hkt-bob"], big))
    notice = mta.wait_mbox("hkt-carol", 1).decode()
    wait_corrupt(mta, name)
    assert "The mail system said: 552 5.3.4 Error: message file too big" in notice
    assert "Content-Type: text/rfc822-headers" in notice and "Subject: huge\nX-Tag: kept\n" in notice
    assert "z" * 99 not in notice


def test_a_file_that_cannot_be_read_waits_quietly_then_is_returned(make_mta):
    mta = make_mta(config_extra="maximal_queue_lifetime = 12s")
    name = drop(mta, "hkt-dave", maildrop_file(["hkt-bob"], b"Subject: unreadable\n\nx\n"), mode=0)
    mta.wait_log(rf"warning: {re.escape(name)}: cannot read it: .*Permission denied; trying again in 5 s, and less often while it fails")
    time.sleep(8)
    assert "maildrop." + name not in mta.queue_files("corrupt")
    # Tried again meanwhile, but not logged again.
    assert len(re.findall(rf"{re.escape(name)}: cannot read it", mta.log())) == 1, mta.log()
    wait_corrupt(mta, name)
    notice = mta.wait_mbox("hkt-dave", 1).decode()
    assert "The mail system said: the message could not be queued within 12 seconds: cannot read it:" in notice
    assert "The message file could not be read; the postmaster has it as " + name in notice
    assert "Content-Type: text/plain" in notice and "multipart" not in notice
    mta.wait_log(rf"warning: {re.escape(name)}: could not be queued within 12 seconds \(cannot read it: .*\); "
                 rf"returned to <hkt-dave@{re.escape(HOSTNAME)}> as \w+; moved to corrupt/")
    assert not os.path.exists(os.path.join(mta.mail, "hkt-bob"))
