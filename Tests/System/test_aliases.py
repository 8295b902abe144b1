"""aliases(5) semantics in delivery: files and commands run as whoever named
them (never root), .forward, :include:, user+detail, owner-LIST, loops."""
import os
import pwd
import re
import shutil
import subprocess
import time


def send(mta, recipients, subject="x", sender="sender@example.org"):
    with mta.smtp() as client:
        client.sendmail(sender, recipients, f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")


def shared_dir(mta, name):
    path = os.path.join(mta.root, name)
    os.makedirs(path)
    os.chmod(path, 0o1777)
    return path


def wait_file(path, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)


def test_file_and_command_targets_of_root_aliases_run_as_nobody(make_mta):
    mta = make_mta(start=False)
    out = shared_dir(mta, "out")
    cmd = os.path.join(mta.root, "record")
    script(cmd, f'id -u > {out}/uid.tmp; cat > {out}/msg; mv {out}/uid.tmp {out}/uid\n')
    with open(os.path.join(mta.etc, "aliases"), "w") as f:
        f.write(f'archive: {out}/archive.mbox\nrunner: "|{cmd}"\nfailing: "|/bin/sh -c \'echo no such mailbox; exit 67\'"\n'
                f'later: "|/bin/sh -c \'exit 75\'"\n')
    mta.start()
    send(mta, ["archive@example.test", "runner@example.test"], subject="targets")
    wait_file(os.path.join(out, "uid"))
    nobody = pwd.getpwnam("nobody").pw_uid
    assert int(open(os.path.join(out, "uid")).read()) == nobody
    assert "Subject: targets" in open(os.path.join(out, "msg")).read()
    mta.wait_log(rf"to=<{re.escape(out)}/archive\.mbox>, orig_to=<archive@example\.test>, relay=local.*status=sent \(delivered to file: ")
    st = os.stat(os.path.join(out, "archive.mbox"))
    assert st.st_uid == nobody and st.st_mode & 0o777 == 0o600
    assert open(os.path.join(out, "archive.mbox")).read().startswith("From sender@example.org  ")
    # A command's exit status decides: 67 bounces with its output, 75 defers.
    send(mta, ["failing@example.test"], subject="fails", sender="hkt-alice@example.test")
    mta.wait_log(r"orig_to=<failing@example\.test>, relay=local.*dsn=5\.3\.0, status=bounced \(Command died with status 67: .*no such mailbox\)")
    bounce = mta.wait_mbox("hkt-alice", 1)
    assert b"Subject: Undelivered Mail Returned to Sender" in bounce and b"Status: 5.3.0" in bounce
    send(mta, ["later@example.test"], subject="later")
    mta.wait_log(r"orig_to=<later@example\.test>, relay=local.*status=deferred \(temporary failure of command")


def test_forward_and_include_files_run_as_their_owners(make_mta):
    mta = make_mta(start=False)
    out = shared_dir(mta, "out")
    dave = pwd.getpwnam("hkt-dave")
    carol = pwd.getpwnam("hkt-carol")
    forward = os.path.join(dave.pw_dir, ".forward")
    with open(forward, "w") as f:
        f.write(f'\\hkt-dave, "|/bin/sh -c \'id -u > {out}/dave\'"\n')
    os.chown(forward, dave.pw_uid, dave.pw_gid)
    os.chmod(forward, 0o644)
    listing = os.path.join(mta.root, "carol.list")
    with open(listing, "w") as f:
        f.write(f'# carol\'s list\nhkt-alice\n"|/bin/sh -c \'id -u > {out}/carol\'"\n')
    os.chown(listing, carol.pw_uid, carol.pw_gid)
    os.chmod(listing, 0o644)
    with open(os.path.join(mta.etc, "aliases"), "w") as f:
        f.write(f"clist: :include:{listing}\n")
    mta.start()
    try:
        send(mta, ["hkt-dave@example.test", "clist@example.test"], subject="owners")
        wait_file(os.path.join(out, "dave"))
        wait_file(os.path.join(out, "carol"))
        assert int(open(os.path.join(out, "dave")).read()) == dave.pw_uid
        assert int(open(os.path.join(out, "carol")).read()) == carol.pw_uid
        assert b"Subject: owners" in mta.wait_mbox("hkt-dave", 1)
        assert b"Subject: owners" in mta.wait_mbox("hkt-alice", 1)
    finally:
        os.unlink(forward)


def test_an_include_inside_an_include_is_read_as_the_outer_files_owner(make_mta):
    mta = make_mta(start=False)
    out = shared_dir(mta, "out")
    carol = pwd.getpwnam("hkt-carol")
    # carol's own list, which only carol can read, named from carol's
    # outer list; the aliases file (root's) names the outer list.
    inner = os.path.join(mta.root, "carol-inner.list")
    with open(inner, "w") as f:
        f.write(f'hkt-bob\n"|/bin/sh -c \'id -u > {out}/inner\'"\n')
    os.chown(inner, carol.pw_uid, carol.pw_gid)
    os.chmod(inner, 0o600)
    outer = os.path.join(mta.root, "carol-outer.list")
    with open(outer, "w") as f:
        f.write(f"hkt-alice, :include:{inner}\n")
    os.chown(outer, carol.pw_uid, carol.pw_gid)
    os.chmod(outer, 0o644)
    # root's list naming carol's inner one: read as default_privs (nobody),
    # who may not read it.
    rooted = os.path.join(mta.root, "root-outer.list")
    with open(rooted, "w") as f:
        f.write(f":include:{inner}\n")
    os.chmod(rooted, 0o644)
    with open(os.path.join(mta.etc, "aliases"), "w") as f:
        f.write(f"nested: :include:{outer}\nviaroot: :include:{rooted}\n")
    mta.start()
    send(mta, ["nested@example.test"], subject="nested")
    wait_file(os.path.join(out, "inner"))
    assert int(open(os.path.join(out, "inner")).read()) == carol.pw_uid
    assert b"Subject: nested" in mta.wait_mbox("hkt-alice", 1)
    assert b"Subject: nested" in mta.wait_mbox("hkt-bob", 1)
    send(mta, ["viaroot@example.test"], subject="via root")
    mta.wait_log(rf"to=<viaroot@example\.test>, relay=local.*status=deferred \(Cannot open {re.escape(inner)}: Permission denied")


def test_a_forward_file_others_can_write_is_ignored(make_mta):
    mta = make_mta()
    bob = pwd.getpwnam("hkt-bob")
    forward = os.path.join(bob.pw_dir, ".forward")
    with open(forward, "w") as f:
        f.write("hkt-alice\n")
    os.chown(forward, bob.pw_uid, bob.pw_gid)
    os.chmod(forward, 0o666)
    try:
        send(mta, ["hkt-bob@example.test"], subject="unsafe")
        assert b"Subject: unsafe" in mta.wait_mbox("hkt-bob", 1)
        mta.wait_log(r"warning: .*hkt-bob/\.forward: not owned by hkt-bob or writable by others; ignored")
        assert not os.path.exists(os.path.join(mta.mail, "hkt-alice"))
    finally:
        os.unlink(forward)


def test_plus_detail_owner_list_and_loops(make_mta):
    mta = make_mta(aliases="list: hkt-bob, someone@elsewhere.example\nowner-list: hkt-carol\n"
                           "loop1: loop2\nloop2: loop1\n")
    send(mta, ["hkt-alice+news@example.test"], subject="detail")
    assert b"Subject: detail" in mta.wait_mbox("hkt-alice", 1)
    mta.wait_log(r"to=<hkt-alice\+news@example\.test>, relay=local.*status=sent \(delivered to mailbox\)")
    # owner-list: the expansion goes out from owner-list, not the sender.
    send(mta, ["list@example.test"], subject="listmail")
    data = mta.wait_mbox("hkt-bob", 1)
    assert b"Return-Path: <owner-list@mail.example.test>" in data
    mta.wait_log(r"to=<someone@elsewhere\.example>, orig_to=<list@example\.test>, relay=local.*status=sent \(forwarded as (\w+)\)")
    forwarded = re.search(r"status=sent \(forwarded as (\w+)\)", mta.log()).group(1)
    mta.wait_log(rf"{forwarded}: from=<owner-list@mail\.example\.test>")
    # A loop bounces with 5.4.6 to the sender.
    send(mta, ["loop1@example.test"], subject="loop", sender="hkt-dave@example.test")
    mta.wait_log(r"to=<loop1@example\.test>, relay=local.*dsn=5\.4\.6, status=bounced \(aliasing/forwarding loop broken")
    assert b"Status: 5.4.6" in mta.wait_mbox("hkt-dave", 1)
