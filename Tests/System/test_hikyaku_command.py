"""The administrator's command: start, status, reload, check, stop."""
import os
import shutil
import socket
import subprocess

from conftest import BIN, mail_processes


def hikyaku(mta, *args):
    return subprocess.run([os.path.join(BIN, "hikyaku"), *args, "-c", mta.config],
                          capture_output=True, text=True, timeout=60)


def test_start_status_reload_stop(make_mta):
    mta = make_mta(start=False)
    result = hikyaku(mta, "status")
    assert result.returncode == 3 and "not running" in result.stdout
    result = hikyaku(mta, "start")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hikyaku: started (pid ")
    pid = int(result.stdout.split("pid ")[1].rstrip(")\n"))
    result = hikyaku(mta, "start")
    assert result.returncode != 0 and f"already running (pid {pid})" in result.stderr
    result = hikyaku(mta, "status")
    assert result.returncode == 0
    assert result.stdout == f"hikyaku: the mail system is running (pid {pid}); queue: incoming=0 active=0 deferred=0 hold=0 corrupt=0\n"
    assert hikyaku(mta, "reload").returncode == 0
    mta.wait_log(r"hikyaku/master\[\d+\]: reload -- version")
    result = hikyaku(mta, "stop")
    assert result.returncode == 0 and result.stdout == "hikyaku: stopped\n", result.stderr
    assert not mail_processes(mta.config)


def test_check_reports_problems_and_config_show(make_mta):
    mta = make_mta()
    result = hikyaku(mta, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    with open(mta.config, "a") as f:
        f.write("no_such_parameter = 1\nalias_file = /nonexistent/aliases\n")
    result = hikyaku(mta, "check")
    assert result.returncode == 1
    assert f"{mta.config}, line " in result.stdout and "unknown parameter no_such_parameter" in result.stdout
    assert "alias_file = /nonexistent/aliases: no such file or directory" in result.stdout
    result = hikyaku(mta, "config", "show", "--set")
    assert "alias_file = /nonexistent/aliases\n" in result.stdout
    assert "myhostname = mail.example.test\n" in result.stdout
    assert "message_size_limit" not in result.stdout
    everything = hikyaku(mta, "config", "show").stdout
    assert "message_size_limit = 10240000\n" in everything


def test_check_looks_at_the_setgid_helper_and_the_spools_other_directories(make_mta):
    mta = make_mta()
    assert hikyaku(mta, "check").returncode == 0
    # The same programs, but a hikyaku-drop without its setgid bit and group.
    programs = os.path.join(mta.root, "programs")
    os.makedirs(programs)
    for name in os.listdir(BIN):
        if name != "hikyaku-drop":
            os.symlink(os.path.join(BIN, name), os.path.join(programs, name))
    shutil.copy(os.path.join(BIN, "hikyaku-drop"), os.path.join(programs, "hikyaku-drop"))
    os.chmod(os.path.join(programs, "hikyaku-drop"), 0o755)
    copy = os.path.join(mta.etc, "check.conf")
    with open(copy, "w") as f:
        f.write(open(mta.config).read().replace(f"daemon_directory = {BIN}", f"daemon_directory = {programs}"))
    os.chmod(os.path.join(mta.spool, "public"), 0o755)
    os.chmod(os.path.join(mta.spool, "defer"), 0o755)
    shutil.chown(os.path.join(mta.spool, "maildrop"), group="hikyaku")
    result = subprocess.run([os.path.join(BIN, "hikyaku"), "check", "-c", copy], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    assert (f"hikyaku: warning: {programs}/hikyaku-drop should be owned by root, group hikyaku-drop, with mode 2755 "
            "(setgid); it is owner root, group root, mode 755: the sendmail command cannot queue mail") in lines, lines
    assert (f"hikyaku: warning: {mta.spool}/public should be owned by hikyaku, group hikyaku-drop, with mode 711; "
            "it is owner hikyaku, group hikyaku-drop, mode 755") in lines, lines
    assert (f"hikyaku: warning: {mta.spool}/defer should be owned by hikyaku with mode 700; "
            "it is owner hikyaku, group hikyaku, mode 755") in lines, lines
    assert (f"hikyaku: warning: {mta.spool}/maildrop should be owned by hikyaku, group hikyaku-drop, with mode 1730; "
            "it is owner hikyaku, group hikyaku, mode 1730") in lines, lines
    assert len(lines) == 4, lines


def test_a_bad_configuration_is_reported_with_its_line(make_mta):
    mta = make_mta(start=False)
    with open(mta.config, "a") as f:
        f.write("smtpd_timeout = later\n")
    result = hikyaku(mta, "check")
    assert result.returncode != 0
    assert "hikyaku.conf, line " in result.stderr and "smtpd_timeout: expected a time" in result.stderr


def test_explain_names_every_step_with_file_and_line(make_mta):
    mta = make_mta(start=False, aliases="# aliases\nteam: hkt-alice, crew\ncrew: hkt-bob\n")
    access = os.path.join(mta.etc, "access")
    with open(access, "w") as f:
        f.write("# access\n127.0.2 RELAY\nFrom:spammer@example.org REJECT\n")
    mta.write_config(f"access_map = {access}")
    result = hikyaku(mta, "explain", "--client", "127.0.2.9", "--from", "jun@example.org", "--rcpt", "team@example.test")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"access {access}:2: 127.0.2 RELAY" in out
    assert f"example.test is a local domain (class w, {mta.etc}/local-host-names:1)" in out
    assert f"alias {mta.etc}/aliases:2: team -> hkt-alice, crew" in out
    assert f"alias {mta.etc}/aliases:3: crew -> hkt-bob" in out
    assert "deliverable: hkt-alice: mailer local, user hkt-alice" in out
    assert "deliverable: hkt-bob: mailer local, user hkt-bob" in out
    refused = hikyaku(mta, "explain", "--client", "192.0.2.7", "--from", "spammer@example.org", "--rcpt", "team@example.test")
    assert refused.returncode == 1
    assert f"access {access}:3: from:spammer@example.org REJECT" in refused.stdout
    assert "decision: reject at check_rcpt: 550 5.7.1 <team@example.test>... Access denied" in refused.stdout


def test_check_reads_the_maps_the_mail_spool_the_sendmail_command_and_the_listeners(make_mta):
    mta = make_mta(start=False, aliases="# aliases\npostmaster: root\n  continued\nbroken root\n")
    access = os.path.join(mta.etc, "access")
    with open(access, "w") as f:
        f.write("# access\n192.0.2 RELAYY\nspammer.example REJECT\nbad.example ERROR:5.7.1:550 go away\n")
    with open(os.path.join(mta.etc, "hosts.deny"), "w") as f:
        f.write("sendmail ALL\n")
    not_ours = os.path.join(mta.root, "sendmail")
    with open(not_ours, "w") as f:
        f.write("#!/bin/sh\nexec /usr/sbin/exim4 \"$@\"\n")
    # A port someone else holds.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    with open(mta.config, "a") as f:
        f.write(f"access_map = {access}\nsubmission_listen = 127.0.0.1:{taken}\n")
    os.chmod(mta.mail, 0o777)
    try:
        result = subprocess.run([os.path.join(BIN, "hikyaku"), "check", "-c", mta.config, "--sendmail-path", not_ours],
                                capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    aliases = os.path.join(mta.etc, "aliases")
    assert f"hikyaku: warning: {aliases}: line 4: " in out, out
    assert (f"hikyaku: warning: {access}: line 2: key 192.0.2: 'RELAYY' is not an access action (OK, RELAY, REJECT, "
            "DISCARD, SKIP, ERROR:...); like sendmail, hikyaku refuses with it as the error text") in out, out
    assert "bad.example" not in out and "spammer.example" not in out
    assert f"hikyaku: warning: {mta.etc}/hosts.deny:1: missing \":\" separator; line ignored" in out, out
    assert (f"hikyaku: warning: {mta.mail} is writable by everyone without the sticky bit: any user can remove or "
            f"replace another's mailbox; chmod 2775 {mta.mail} and chgrp mail {mta.mail} (Debian's default)") in out, out
    assert f"hikyaku: warning: {not_ours} is not hikyaku's sendmail" in out, out
    assert (f"hikyaku: warning: submission_listen: cannot listen on 127.0.0.1:{taken}: Address already in use; "
            "if another program holds the port, `ss -ltnp` names it") in out, out
    # Our own sendmail, through a symlink, is fine; a missing one is not.
    link = os.path.join(mta.root, "sendmail-link")
    os.symlink(os.path.join(BIN, "sendmail"), link)
    os.chmod(mta.mail, 0o2775)
    with open(mta.config, "a") as f:
        f.write("submission_listen =\n")
    with open(access, "w") as f:
        f.write("192.0.2 RELAY\n")
    with open(os.path.join(mta.etc, "aliases"), "w") as f:
        f.write("postmaster: root\n")
    os.unlink(os.path.join(mta.etc, "hosts.deny"))
    result = subprocess.run([os.path.join(BIN, "hikyaku"), "check", "-c", mta.config, "--sendmail-path", link],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    result = subprocess.run([os.path.join(BIN, "hikyaku"), "check", "-c", mta.config, "--sendmail-path",
                             os.path.join(mta.root, "nothing")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "nothing is missing: cron, mailx and every program" in result.stdout


def test_status_verbose_lists_programs_and_the_last_errors(make_mta):
    mta = make_mta()
    with open(mta.config, "a") as f:
        f.write("access_map = /nonexistent/dir/access\n")
    result = hikyaku(mta, "status", "--verbose")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    master = mta.process.pid
    assert lines[1:3] == ["processes:", f"  master {master}"], lines
    for program in ("aliasd", "cleanup", "local", "pickup", "qmgr", "showq", "smtp-client", "smtpd"):
        assert any(line.startswith(f"  {program} ") for line in lines), (program, lines)
    # A warning in the log shows up.
    os.kill(mta.pids()["smtpd"][0], 9)
    mta.wait_log(r"warning: process .*smtpd pid \d+ killed by signal 9")
    result = hikyaku(mta, "status", "-v")
    tail = result.stdout.split(f"last errors ({mta.maillog}):\n", 1)[1]
    assert "killed by signal 9" in tail, result.stdout
