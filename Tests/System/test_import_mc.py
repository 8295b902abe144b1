"""`hikyaku config import-sendmail-mc` on Debian 12's stock sendmail.mc and
on the tutorial's edit of it (Tests/SendmailMCTests/Fixtures): the exit
status, the settings it prints, and the real hikyaku started with those
settings deciding relaying as the recorded sendmail did.

The listening keys are left out when the settings are merged into the test
harness's configuration (the harness listens on a port of its own), and
/etc/mail/ in a path is the test root's etc/, where the recorded maps are."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import BIN, TOP
from smtpclient import RawSMTP
from test_sendmail_compat import CORPUS, ensure_compat_users
from test_tutorial import ACCESS as TUTORIAL_ACCESS

FIXTURES = os.path.join(TOP, "Tests", "SendmailMCTests", "Fixtures")
MAPS = os.path.join(TOP, "Tests", "Compat", "cases", "maps")
LISTEN_KEYS = ("smtpd_listen", "submission_listen", "smtps_listen")
# Debian's sendmail.mc includes these; Debian creates them empty.
DEBIAN_INCLUDES = ("/etc/mail/m4/dialup.m4", "/etc/mail/m4/provider.m4")


def import_mc(path):
    return subprocess.run([os.path.join(BIN, "hikyaku"), "config", "import-sendmail-mc", path],
                          capture_output=True, text=True, timeout=60)


def settings(output, defaults=False):
    """KEY -> VALUE of the `key = value` lines; with defaults, also of the
    commented-out `# key = value<TAB>(hikyaku's default)` lines."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"^([A-Za-z_]+) = (.*)$", line)
        if not match and defaults:
            match = re.match(r"^# ([A-Za-z_]+) = (.*)\t\(hikyaku's default\)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def not_translated(output):
    """(LINE, REASON) of each entry under `# Not translated`."""
    part = output.split("# Not translated:", 1)[1]
    return re.findall(r"^#   \S+?:(\d+): .*\n#       (.*)$", part, re.M)


def includes_readable():
    return all(os.access(path, os.R_OK) for path in DEBIAN_INCLUDES)


@pytest.fixture(scope="module")
def imported():
    out = {}
    for name in ("debian-sendmail", "tutorial-sendmail"):
        result = import_mc(os.path.join(FIXTURES, f"{name}.mc"))
        out[name] = result
    return out


def test_debian_stock_file(imported, tmp_path):
    result = imported["debian-sendmail"]
    path = os.path.join(FIXTURES, "debian-sendmail.mc")
    # Debian's throttles and two of its privacy flags have no equivalent.
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"hikyaku: {path}: ") and "not translated" in result.stderr
    assert settings(result.stdout) == {"submission_listen": "127.0.0.1:587", "myorigin": "mail.example.jp"}
    assert settings(result.stdout, defaults=True) == {
        "smtpd_listen": "127.0.0.1:25", "submission_listen": "127.0.0.1:587", "local_host_names_file": "/etc/mail/local-host-names",
        "access_map": "/etc/mail/access", "smtpd_greet_pause": "1s", "smtpd_delay_checks": "yes", "myorigin": "mail.example.jp",
    }
    out = result.stdout
    assert out.startswith(f"# hikyaku.conf settings translated from {path}\n")
    assert (f"# from {path}:59: DAEMON_OPTIONS(`Family=inet, Name=MSP-v4, Port=submission, M=Ea, Addr=127.0.0.1')\n"
            "#   hikyaku's submission port requires STARTTLS") in out
    changing = [(int(line), reason) for line, reason in not_translated(out) if not reason.startswith("ignored: ")]
    expected = [62, 62, 66, 85, 88, 89] + ([] if includes_readable() else [97, 98])
    assert [line for line, _ in changing] == expected, changing
    assert changing[2][1].startswith("no equivalent: sendmail makes connections beyond 15 a second wait")
    ignored = [int(line) for line, reason in not_translated(out) if reason.startswith("ignored: ")]
    assert {1, 28, 34, 35, 36, 37, 38, 107, 108, 109} <= set(ignored)
    # What it printed is a configuration hikyaku loads, with no unknown key.
    config = tmp_path / "imported.conf"
    config.write_text(out)
    shown = subprocess.run([os.path.join(BIN, "hikyaku"), "config", "show", "--set", "-c", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "myorigin = mail.example.jp\nsubmission_listen = 127.0.0.1:587\n"


def test_tutorial_edit(imported):
    result = imported["tutorial-sendmail"]
    path = os.path.join(FIXTURES, "tutorial-sendmail.mc")
    assert result.returncode == 1, result.stderr
    assert settings(result.stdout) == {"smtpd_listen": "0.0.0.0:25", "myorigin": "mail.example.jp"}
    assert (f"# from {path}: no DAEMON_OPTIONS: sendmail listens on port 25 of every IPv4 address\n"
            "smtpd_listen = 0.0.0.0:25\n") in result.stdout
    assert "submission_listen" not in result.stdout


def test_unreadable_and_unparsable_files(tmp_path):
    missing = str(tmp_path / "none.mc")
    result = import_mc(missing)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"hikyaku: {missing}: cannot read: No such file or directory\n"
    broken = tmp_path / "broken.mc"
    broken.write_text("divert(0)dnl\nFEATURE(`use_cw_file')dnl\nMASQUERADE_AS(`example.jp)dnl\nMAILER(`smtp')dnl\n")
    result = import_mc(str(broken))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"hikyaku: {broken}:3: a quote opened with ` is not closed with ' "
                             "before the end of the file\n")


def test_everything_translated_exits_0(tmp_path):
    mc = tmp_path / "sendmail.mc"
    mc.write_text("divert(0)dnl\ninclude(`/usr/share/sendmail/cf/m4/cf.m4')dnl\nOSTYPE(`debian')dnl\n"
                  "DAEMON_OPTIONS(`Port=smtp, Name=MTA')dnl\nFEATURE(`access_db')dnl\n"
                  "define(`confMAX_MESSAGE_SIZE', `20000000')dnl\ndefine(`SMART_HOST', `[relay.example.net]')dnl\n"
                  "MAILER(`local')dnl\nMAILER(`smtp')dnl\n")
    result = import_mc(str(mc))
    assert result.returncode == 0, result.stdout
    assert result.stderr == ""
    assert settings(result.stdout) == {
        "smtpd_listen": "0.0.0.0:25, 0.0.0.0:587", "message_size_limit": "20000000",
        "smart_host": "[relay.example.net]", "smtpd_delay_checks": "no", "smtpd_greet_pause": "0s",
    }


def merged(output, etc):
    """The imported settings for the harness: no listening keys, /etc/mail/
    moved to the test root, relay-domains where sendmail reads it."""
    lines = []
    for key, value in settings(output, defaults=True).items():
        if key in LISTEN_KEYS:
            continue
        lines.append(f"{key} = {value.replace('/etc/mail/', etc + '/')}")
    # sendmail reads /etc/mail/relay-domains whether or not the .mc says so.
    lines.append(f"relay_domains_file = {etc}/relay-domains")
    return "\n".join(lines) + "\n"


def test_debian_settings_decide_like_the_recorded_sendmail(imported, make_mta):
    """Debian's sendmail.mc with the recorded access map: every recorded
    case from a loopback address gets sendmail's decision over SMTP
    (delay_checks: the client's refusal comes at RCPT)."""
    ensure_compat_users()
    mta = make_mta(start=False)
    for name in ("access", "relay-domains", "local-host-names"):
        with open(os.path.join(MAPS, name)) as src, open(os.path.join(mta.etc, name), "w") as dst:
            dst.write(src.read().replace("@RUN@", mta.etc) + ("example.test\n" if name == "local-host-names" else ""))
    extra = merged(imported["debian-sendmail"].stdout, mta.etc)
    assert f"access_map = {mta.etc}/access\n" in extra and "smtpd_delay_checks = yes\n" in extra
    mta.write_config(extra)
    mta.start()
    cases = [c for c in CORPUS if c["area"] == "access" and c["variant"] == "debian"
             and c["input"]["client_addr"].startswith("127.")]
    assert len(cases) >= 6
    for case in cases:
        i, want = case["input"], case["expected"]
        with RawSMTP(mta.port, source=i["client_addr"]) as s:
            s.ehlo()
            assert s.command(f"MAIL FROM:{i['mail_from']}") == "250 2.1.0 Ok", case["id"]
            reply = s.command(f"RCPT TO:{i['rcpt_to']}")
        if want["decision"] in ("accept", "discard"):
            assert reply == "250 2.1.5 Ok", (case["id"], reply)
        else:
            assert reply.startswith(f"{want['code']} {want['enhanced']} {i['rcpt_to']}... {want['text']}"), (case["id"], reply)


def test_tutorial_settings_relay_for_the_tutorials_network(imported, make_mta):
    """The tutorial's sendmail.mc with the tutorial's access file: 127.0.0.1
    and 192.168.0 may relay, other clients only send to local users."""
    mta = make_mta(start=False)
    with open(os.path.join(mta.etc, "access"), "w") as f:
        f.write(TUTORIAL_ACCESS)
    with open(os.path.join(mta.etc, "local-host-names"), "w") as f:
        f.write("example.test\nexample.jp\n")
    open(os.path.join(mta.etc, "relay-domains"), "w").close()
    mta.write_config(merged(imported["tutorial-sendmail"].stdout, mta.etc))
    mta.start()
    for source, rcpt, want in [
        ("127.0.0.1", "<someone@example.org>", "250 2.1.5 Ok"),
        ("127.0.9.9", "<someone@example.org>", "550 5.7.1 <someone@example.org>... Relaying denied. IP name lookup failed [127.0.9.9]"),
        ("127.0.9.9", "<hkt-alice@example.jp>", "250 2.1.5 Ok"),
    ]:
        with RawSMTP(mta.port, source=source) as s:
            s.ehlo()
            assert s.command("MAIL FROM:<jun@example.net>") == "250 2.1.0 Ok"
            assert s.command(f"RCPT TO:{rcpt}") == want, (source, rcpt)
    # 192.168.0.0/24 is the tutorial's LAN; it is asked about, not connected from.
    for client, status in (("192.168.0.5", 0), ("192.0.2.7", 1)):
        result = subprocess.run([os.path.join(BIN, "hikyaku"), "explain", "-c", mta.config, "--client", client,
                                 "--from", "jun@example.net", "--rcpt", "someone@example.org"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == status, result.stdout + result.stderr
        if status == 0:
            assert f"access {mta.etc}/access:12: 192.168.0 RELAY" in result.stdout, result.stdout
