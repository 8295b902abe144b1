"""Who runs as whom, read from /proc while the MTA runs."""
import grp
import os
import pwd
import time


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return fields


def settled(mta, timeout=10):
    """The programs once each has dropped its privileges: ready means smtpd
    answers, and a program still reading its keys as root (smtp-client's
    TLS files) may be a moment behind."""
    deadline = time.time() + timeout
    while True:
        running = mta.pids()
        starting = [pid for name, pids in running.items() if name not in ("master", "local")
                    for pid in pids if os.path.exists(f"/proc/{pid}") and int(status(pid)["Uid"][1]) == 0]
        if not starting or time.time() > deadline:
            return running
        time.sleep(0.1)


def test_each_program_runs_with_its_privileges_and_chroot(mta):
    hikyaku = pwd.getpwnam("hikyaku")
    running = settled(mta)
    assert set(running) >= {"master", "smtpd", "cleanup", "qmgr", "local", "aliasd", "pickup", "showq", "smtp-client"}, running
    spool = os.path.realpath(mta.spool)
    for name, pids in running.items():
        for pid in pids:
            st = status(pid)
            uids = [int(x) for x in st["Uid"]]
            gids = [int(x) for x in st["Gid"]]
            root = os.readlink(f"/proc/{pid}/root")
            if name in ("master", "local"):
                assert uids == [0, 0, 0, 0], (name, uids)
                assert root == "/", (name, root)
                if name == "local":
                    # local keeps root only to become recipients: no extra groups.
                    assert st["Groups"] == [], (name, st["Groups"])
                continue
            assert uids == [hikyaku.pw_uid] * 4, (name, uids)
            assert gids == [hikyaku.pw_gid] * 4, (name, gids)
            assert [int(g) for g in st["Groups"]] == [hikyaku.pw_gid], (name, st["Groups"])
            # No capabilities left.
            assert int(st["CapEff"][0], 16) == 0 and int(st["CapPrm"][0], 16) == 0, (name, st["CapEff"])
            if name in ("smtpd", "cleanup", "qmgr", "pickup", "showq", "smtp-client"):
                assert root == spool, (name, root)
            else:
                assert name == "aliasd" and root == "/", (name, root)


def test_nothing_but_master_and_local_has_uid_0(mta):
    for name, pids in settled(mta).items():
        for pid in pids:
            if name not in ("master", "local"):
                assert int(status(pid)["Uid"][1]) != 0, name


def test_queue_directories_belong_to_the_mail_owner(mta):
    hikyaku = pwd.getpwnam("hikyaku")
    for queue in ("tmp", "incoming", "active", "deferred", "hold", "corrupt", "defer", "private"):
        st = os.stat(os.path.join(mta.spool, queue))
        assert st.st_uid == hikyaku.pw_uid and st.st_mode & 0o777 == 0o700, queue
    # maildrop/: the setgid helper's group writes, nobody lists (Postfix's 1730).
    st = os.stat(os.path.join(mta.spool, "maildrop"))
    assert st.st_uid == hikyaku.pw_uid and st.st_gid == grp.getgrnam("hikyaku-drop").gr_gid
    assert st.st_mode & 0o7777 == 0o1730
    st = os.stat(os.path.join(mta.spool, "public", "pickup"))
    assert st.st_gid == grp.getgrnam("hikyaku-drop").gr_gid and st.st_mode & 0o777 == 0o660
    for service in ("cleanup", "qmgr", "local", "aliasd"):
        st = os.stat(os.path.join(mta.spool, "private", service))
        assert st.st_uid == hikyaku.pw_uid and st.st_mode & 0o777 == 0o600, service


def test_mailbox_of_a_new_user_is_created_as_that_user(mta):
    with mta.smtp() as client:
        client.sendmail("a@example.org", ["hkt-bob@example.test"], "Subject: x\r\n\r\nhello\r\n")
    mta.wait_mbox("hkt-bob", 1)
    st = os.stat(os.path.join(mta.mail, "hkt-bob"))
    assert st.st_uid == pwd.getpwnam("hkt-bob").pw_uid
    assert st.st_gid == grp.getgrnam("mail").gr_gid
    assert st.st_mode & 0o7777 == 0o600
