"""The Debian package (`make deb`), installed on a Debian 12 system: a
chroot made with debootstrap in which Debian's postfix, bsd-mailx, cron and
git-email are installed. `apt-get install ./hikyaku_*.deb` must replace
postfix and keep /etc/aliases; then the real mail programs (bsd-mailx,
cron's exact command line, git send-email) and SMTP deliver to
/var/mail/USER through the installed programs; dpkg-reconfigure writes the
answers and nothing else; an upgrade keeps queued mail; a purge leaves no
user, group or spool. lintian and systemd-analyze check the package.

It runs only with HIKYAKU_DEB_TEST=1 (`make deb-test`), as root: it needs
debootstrap, and deb.debian.org the first time, when the chroot is built
and kept in /var/cache/hikyaku-test/bookworm-root (HIKYAKU_DEB_CACHE) for
the next runs, which then need no network. It takes the package from
HIKYAKU_DEB, or the newest hikyaku_*.deb at the top of the checkout, or
builds one with `make deb` (a release build: many minutes).

Each test works on its own copy of the cached chroot, in namespaces of its
own: a PID namespace (everything in it dies with the test), a mount
namespace with its own /proc, a UTS namespace with the host name `mail`
(mail.example.test in the chroot's /etc/hosts), and a network namespace
with only a loopback interface, so the package's default smtpd_listen,
127.0.0.1:25, is the chroot's own. apt runs in the host's network."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import TOP

pytestmark = [
    pytest.mark.skipif(os.environ.get("HIKYAKU_DEB_TEST") != "1",
                       reason="the Debian package test runs with HIKYAKU_DEB_TEST=1 (make deb-test): it needs "
                              "debootstrap, and deb.debian.org the first time"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the Debian package test needs root (chroot, namespaces)"),
]

CACHE = os.environ.get("HIKYAKU_DEB_CACHE", "/var/cache/hikyaku-test")
BASE = os.path.join(CACHE, "bookworm-root")
MIRROR = os.environ.get("HIKYAKU_DEB_MIRROR", "http://deb.debian.org/debian")
FQDN = "mail.example.test"
# The MTA the package replaces, the programs that send mail through it,
# and what a Debian 12 system has besides minbase (systemd for
# systemd-analyze and deb-systemd-helper's links, procps for /bin/kill).
# git send-email needs Mail::Address (libmailtools-perl, a Recommends).
PACKAGES = ["postfix", "bsd-mailx", "cron", "git", "git-email", "libmailtools-perl", "systemd", "procps"]
# Changing this rebuilds the cached chroot.
RECIPE = "3 bookworm minbase " + " ".join(PACKAGES)
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
CRON_FORMAT = "%s -FCronDaemon -i -B8BITMIME -oem %s"

LO_UP = ("import fcntl, socket, struct; s = socket.socket(); "
         "flags = struct.unpack('16sH22x', fcntl.ioctl(s, 0x8913, struct.pack('16sH22x', b'lo', 0)))[1]; "
         "fcntl.ioctl(s, 0x8914, struct.pack('16sH22x', b'lo', flags | 1))")
SMTP_READY = ("import socket, sys; s = socket.create_connection(('127.0.0.1', 25), timeout=5); s.settimeout(10); "
              "sys.exit(0 if s.recv(100).startswith(b'220 ') else 1)")


def log(text):
    sys.stderr.write(text + "\n")


class Chroot:
    """A Debian root and the namespaces its commands run in."""

    def __init__(self, root, network=False):
        self.root = root
        # The namespaces' first process; everything in the PID namespace
        # dies with it. --mount-proc gives the chroot its own /proc.
        self.holder = subprocess.Popen(["unshare", "--fork", "--kill-child", "--pid", "--mount", "--uts", "--net",
                                        f"--mount-proc={root}/proc", "sleep", "infinity"])
        self.init = None
        deadline = time.time() + 10
        while time.time() < deadline and self.init is None:
            try:
                with open(f"/proc/{self.holder.pid}/task/{self.holder.pid}/children") as f:
                    children = f.read().split()
                if children and os.readlink(f"/proc/{children[0]}/ns/pid") != os.readlink("/proc/self/ns/pid"):
                    self.init = int(children[0])
            except OSError:
                pass
            time.sleep(0.05)
        assert self.init, "unshare did not start"
        self.host(["hostname", "mail"], ns=["--uts"])
        self.host([sys.executable, "-c", LO_UP], ns=["--net"])

    def host(self, command, ns, **kwargs):
        """A host program in some of the namespaces (not in the chroot)."""
        return subprocess.run(["nsenter", f"--target={self.init}"] + ns + command, check=True, **kwargs)

    def run(self, command, user=None, input=None, check=True, host_network=False, env=None, timeout=900):
        """COMMAND (a list, or a string for sh -c) in the chroot, as root or USER."""
        ns = ["--mount", "--uts", "--pid"] + ([] if host_network else ["--net"])
        home = f"/home/{user}" if user else "/root"
        environment = {"PATH": PATH, "LANG": "C", "HOME": home, "USER": user or "root", "LOGNAME": user or "root",
                       "DEBIAN_FRONTEND": "noninteractive"}
        environment.update(env or {})
        if isinstance(command, str):
            command = ["sh", "-c", command]
        argv = ["nsenter", f"--target={self.init}"] + ns + ["chroot", self.root]
        if user:
            argv += ["runuser", "-u", user, "--"]
        argv += ["env", "-i"] + [f"{k}={v}" for k, v in environment.items()] + command
        result = subprocess.run(argv, input=input.encode() if isinstance(input, str) else input,
                                capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{command} exited {result.returncode}:\n"
                                 + result.stdout.decode(errors="replace")[-6000:]
                                 + result.stderr.decode(errors="replace")[-6000:])
        return result

    def out(self, command, **kwargs):
        return self.run(command, **kwargs).stdout.decode()

    def path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def read(self, path, default=None):
        try:
            with open(self.path(path), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            if default is None:
                raise
            return default

    def apt(self, *arguments):
        return self.run(["apt-get", "-y", "-o", "Dpkg::Options::=--force-confold"] + list(arguments),
                        host_network=True)

    def close(self):
        if self.holder.poll() is None:
            self.holder.kill()
            self.holder.wait()


def build_base():
    """debootstrap's minbase of bookworm with postfix and the mail programs,
    kept in the cache; built in a temporary directory and renamed."""
    stamp = os.path.join(BASE, ".hikyaku-test-root")
    if os.path.exists(stamp) and open(stamp).read() == RECIPE:
        return
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is missing (apt-get install debootstrap)")
    started = time.time()
    os.makedirs(CACHE, exist_ok=True)
    work = BASE + ".tmp"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", work, MIRROR], check=True,
                   stdout=subprocess.DEVNULL)
    log(f"debootstrap: {time.time() - started:.0f} s")
    # No service starts in the chroot.
    with open(os.path.join(work, "usr/sbin/policy-rc.d"), "w") as f:
        f.write("#!/bin/sh\nexit 101\n")
    os.chmod(os.path.join(work, "usr/sbin/policy-rc.d"), 0o755)
    with open(os.path.join(work, "etc/hostname"), "w") as f:
        f.write("mail\n")
    with open(os.path.join(work, "etc/hosts"), "w") as f:
        f.write(f"127.0.0.1\tlocalhost\n127.0.1.1\t{FQDN} mail\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    chroot = Chroot(work)
    try:
        chroot.run(["debconf-set-selections"], input=(
            "postfix postfix/main_mailer_type select Local only\n"
            f"postfix postfix/mailname string {FQDN}\n"))
        chroot.apt("install", "--no-install-recommends", *PACKAGES)
        chroot.apt("clean")
    finally:
        chroot.close()
    with open(os.path.join(work, ".hikyaku-test-root"), "w") as f:
        f.write(RECIPE)
    shutil.rmtree(BASE, ignore_errors=True)
    os.rename(work, BASE)
    log(f"bookworm root with {' '.join(PACKAGES)}: {time.time() - started:.0f} s")


def package_file():
    chosen = os.environ.get("HIKYAKU_DEB")
    if chosen:
        return os.path.abspath(chosen)
    built = sorted(glob.glob(os.path.join(TOP, "hikyaku_*_amd64.deb")), key=os.path.getmtime)
    if built:
        return built[-1]
    subprocess.run(["make", "-C", TOP, "deb"], check=True)
    return sorted(glob.glob(os.path.join(TOP, "hikyaku_*_amd64.deb")), key=os.path.getmtime)[-1]


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", deb, name], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def deb():
    return package_file()


@pytest.fixture(scope="module")
def upgrade_deb(deb, tmp_path_factory):
    """The same package with a higher version, as the next build would be."""
    work = tmp_path_factory.mktemp("repack")
    tree = work / "tree"
    subprocess.run(["dpkg-deb", "-R", deb, str(tree)], check=True)
    control = (tree / "DEBIAN" / "control").read_text()
    version = field(deb, "Version") + "+1"
    (tree / "DEBIAN" / "control").write_text(re.sub(r"(?m)^Version: .*$", f"Version: {version}", control))
    out = work / f"hikyaku_{version}_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return str(out), version


@pytest.fixture
def chroot(tmp_path):
    build_base()
    started = time.time()
    parent = tempfile.mkdtemp(prefix="hikyaku-deb-test-", dir=os.path.dirname(BASE))
    root = os.path.join(parent, "root")
    subprocess.run(["cp", "-a", "--reflink=auto", BASE, root], check=True)
    log(f"copy of the chroot: {time.time() - started:.0f} s")
    c = Chroot(root)
    c.master = None
    c.parent = parent
    try:
        yield c
    finally:
        c.close()
        if os.environ.get("HIKYAKU_KEEP_TEST_ROOT"):
            log(f"kept {root}")
        else:
            shutil.rmtree(parent, ignore_errors=True)


def install(chroot, deb):
    shutil.copy(deb, chroot.path("/root/"))
    result = chroot.apt("install", "/root/" + os.path.basename(deb))
    os.unlink(chroot.path("/root/" + os.path.basename(deb)))
    return result.stdout.decode(errors="replace")


def start_master(chroot):
    """The installed master in the background, as systemd would start it."""
    output = open(os.path.join(chroot.parent, "master.out"), "ab")
    chroot.master = subprocess.Popen(
        ["nsenter", f"--target={chroot.init}", "--mount", "--uts", "--pid", "--net", "chroot", chroot.root,
         "env", "-i", f"PATH={PATH}", "LANG=C", "/usr/lib/hikyaku/master"], stdout=output, stderr=output)
    deadline = time.time() + 60
    while time.time() < deadline:
        assert chroot.master.poll() is None, "the master exited: " + maillog(chroot)
        ready = subprocess.run(["nsenter", f"--target={chroot.init}", "--net", sys.executable, "-c", SMTP_READY],
                               capture_output=True)
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError("smtpd did not answer on 127.0.0.1:25: " + maillog(chroot))


def stop_master(chroot):
    chroot.run(["hikyaku", "stop"])
    chroot.master.wait(30)
    chroot.master = None


def maillog(chroot):
    return chroot.read("/var/log/hikyaku.log", "") + open(os.path.join(chroot.parent, "master.out"), errors="replace").read()


def wait_mail(chroot, user, pattern, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        box = chroot.read(f"/var/mail/{user}", "")
        if re.search(pattern, box, re.M):
            return box
        time.sleep(0.2)
    raise AssertionError(f"/var/mail/{user} never matched {pattern!r}:\n{chroot.read(f'/var/mail/{user}', '')}\n"
                         + maillog(chroot)[-6000:])


def log_to_file(chroot):
    """The chroot has no syslog: the mail log goes to a file, as an
    administrator would set it."""
    with open(chroot.path("/etc/hikyaku/hikyaku.conf"), "a") as f:
        f.write("\n# Added by hand.\nmaillog_file = /var/log/hikyaku.log\n")


def listening(chroot):
    """The chroot's network namespace's listening IPv4 TCP sockets, as
    /proc/net/tcp writes their addresses (00000000:0019 is 0.0.0.0:25)."""
    with open(f"/proc/{chroot.init}/net/tcp") as f:
        return [line.split()[1] for line in f.readlines()[1:] if line.split()[3] == "0A"]


def status(chroot, package):
    return chroot.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}", package], check=False).stdout.decode()


def ids(chroot, database, name):
    return chroot.run(["getent", database, name], check=False).stdout.decode().strip()


def check_purged(chroot):
    for database, name in [("passwd", "hikyaku"), ("group", "hikyaku"), ("group", "hikyaku-drop")]:
        assert ids(chroot, database, name) == "", (database, name)
    assert ids(chroot, "group", "mail")
    for path in ["/var/spool/hikyaku", "/etc/hikyaku", "/usr/lib/hikyaku", "/usr/sbin/sendmail"]:
        assert not os.path.lexists(chroot.path(path)), path
    assert "hikyaku" not in chroot.out(["dpkg-statoverride", "--list"])
    assert chroot.out(["debconf-show", "hikyaku"]).strip() == ""
    assert status(chroot, "hikyaku").startswith(("un", "pn")) or status(chroot, "hikyaku") == ""
    assert not glob.glob(chroot.path("/etc/systemd/system/*/hikyaku*"))


def test_lintian(deb):
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed")
    result = subprocess.run(["lintian", "--fail-on", "error,warning", "--display-info", deb],
                            capture_output=True, text=True)
    log(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    # Only tags the overrides explain, and informational ones.
    assert not re.search(r"(?m)^[EW]: ", result.stdout), result.stdout


def test_package_fields_and_files(deb):
    assert field(deb, "Package") == "hikyaku"
    for name in ["Provides", "Conflicts", "Replaces"]:
        assert field(deb, name) == "mail-transport-agent"
    depends = field(deb, "Depends")
    assert re.search(r"\blibc6 \(>= ", depends) and "libdb5.3" in depends, depends
    assert "swift" not in depends.lower()
    listing = subprocess.run(["dpkg-deb", "-c", deb], check=True, capture_output=True, text=True).stdout
    for program in ["master", "smtpd", "cleanup", "qmgr", "local", "smtp-client", "pickup", "aliasd", "showq",
                    "hikyaku-drop"]:
        assert re.search(rf"(?m)^-rwxr-xr-x root/root .* \./usr/lib/hikyaku/{re.escape(program)}$", listing), program
    for command in ["sendmail", "makemap", "hikyaku"]:
        assert re.search(rf"(?m)^-rwxr-xr-x root/root .* \./usr/sbin/{command}$", listing), command
    for link, target in [("usr/lib/sendmail", "../sbin/sendmail"), ("usr/bin/mailq", "../sbin/sendmail"),
                         ("usr/bin/newaliases", "../sbin/sendmail")]:
        assert f"./{link} -> {target}" in listing, link
    for page in glob.glob(os.path.join(TOP, "man", "*.[158]")):
        name = os.path.basename(page)
        assert f"./usr/share/man/man{name[-1]}/{name}.gz" in listing, name
    for unit in ["hikyaku.service", "hikyaku.socket", "hikyaku-submission.socket", "hikyaku-smtps.socket"]:
        assert f"./lib/systemd/system/{unit}" in listing
    assert "./usr/share/doc/hikyaku/copyright" in listing
    assert "./usr/share/doc/hikyaku/changelog.Debian.gz" in listing
    # hikyaku.conf is written by the postinst, not shipped in /etc.
    assert "./etc/" not in listing


def test_replaces_postfix_delivers_and_purges(chroot, deb):
    c = chroot
    assert status(c, "postfix").startswith("ii")
    with open(c.path("/etc/aliases"), "a") as f:
        f.write("hikyaku-marker: jun\n")
    c.run(["newaliases"])  # postfix's
    c.run(["useradd", "--create-home", "--shell", "/bin/sh", "jun"])

    started = time.time()
    output = install(c, deb)
    log(f"apt-get install over postfix: {time.time() - started:.0f} s")
    assert re.search(r"(?s)REMOVED:.*postfix", output), output
    assert status(c, "postfix").startswith("rc")
    assert status(c, "hikyaku").startswith("ii")
    assert "hikyaku" in c.out(["dpkg-query", "-S", "/usr/sbin/sendmail"])
    # The administrator's aliases are kept, and compiled by hikyaku's newaliases.
    assert "hikyaku-marker: jun\n" in c.read("/etc/aliases")
    assert os.path.getmtime(c.path("/etc/aliases.db")) >= os.path.getmtime(c.path("/etc/aliases"))
    assert c.read("/etc/mailname") == FQDN + "\n"

    # Users, groups, the setgid helper, the spool.
    assert ids(c, "passwd", "hikyaku").split(":")[5:] == ["/var/spool/hikyaku", "/usr/sbin/nologin"]
    drop_gid = int(ids(c, "group", "hikyaku-drop").split(":")[2])
    helper = os.stat(c.path("/usr/lib/hikyaku/hikyaku-drop"))
    assert (helper.st_uid, helper.st_gid, oct(helper.st_mode & 0o7777)) == (0, drop_gid, oct(0o2755))
    assert "root hikyaku-drop 2755 /usr/lib/hikyaku/hikyaku-drop" in c.out(["dpkg-statoverride", "--list"])
    maildrop = os.stat(c.path("/var/spool/hikyaku/maildrop"))
    assert (maildrop.st_gid, oct(maildrop.st_mode & 0o7777)) == (drop_gid, oct(0o1730))

    # The configuration: the default answers (Local only) and the host's names.
    conf = c.read("/etc/hikyaku/hikyaku.conf")
    for line in ["smtpd_listen = 127.0.0.1:25", "smart_host = ", f"myorigin = {FQDN}", f"myhostname = {FQDN}"]:
        assert re.search(rf"(?m)^{re.escape(line)}$", conf), line
    assert c.out(["hikyaku", "check"]).startswith("hikyaku: configuration /etc/hikyaku/hikyaku.conf and spool")
    # Enabled as systemd would have it; the socket units are not.
    assert os.path.islink(c.path("/etc/systemd/system/multi-user.target.wants/hikyaku.service"))
    assert not glob.glob(c.path("/etc/systemd/system/sockets.target.wants/hikyaku*"))
    verify = c.run(["systemd-analyze", "verify", "--man=no", "hikyaku.service", "hikyaku.socket",
                    "hikyaku-submission.socket", "hikyaku-smtps.socket"], check=False)
    assert verify.returncode == 0 and verify.stdout + verify.stderr == b"", verify
    for page in ["man8/master.8.gz", "man8/hikyaku.8.gz", "man5/hikyaku.conf.5.gz", "man8/smtpd.8.gz"]:
        assert os.path.exists(c.path("/usr/share/man/" + page))  # the units' Documentation=

    log_to_file(c)
    start_master(c)
    # The aliases file kept from postfix's time.
    c.run(["/usr/sbin/sendmail", "-i", "hikyaku-marker"], input="Subject: to the marker\n\nmarker\n")
    wait_mail(c, "jun", r"^Subject: to the marker$")

    # bsd-mailx, as a user.
    c.run("echo 'written with mailx' | mail -s 'from mailx' root", user="jun")
    box = wait_mail(c, "root", r"^Subject: from mailx$")
    assert f"Return-Path: <jun@{FQDN}>" in box

    # cron: the command line in Debian's cron binary, as cron runs it (popen)
    # for root's crontab and for a user's.
    binary = open(c.path("/usr/sbin/cron"), "rb").read()
    assert b"/usr/sbin/sendmail\0" in binary
    formats = [f.decode() for f in re.findall(rb"%s -FCron[^\0]*", binary)]
    assert [re.sub(" +", " ", f) for f in formats] == [CRON_FORMAT], formats
    cron_mail = ("From: root (Cron Daemon)\nTo: {user}\nSubject: Cron <{user}@mail> echo out of cron\n"
                 "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n"
                 "X-Cron-Env: <SHELL=/bin/sh>\nX-Cron-Env: <HOME=/root>\n\nout of cron, for {user}\n")
    for user in ["root", "jun"]:
        c.run(formats[0] % ("/usr/sbin/sendmail", user), user=None if user == "root" else user,
              input=cron_mail.format(user=user))
        box = wait_mail(c, user, rf"^out of cron, for {user}$")
        assert "From: root (Cron Daemon)\n" in box

    # git send-email with its default, /usr/sbin/sendmail.
    git_env = {"GIT_AUTHOR_NAME": "Jun", "GIT_AUTHOR_EMAIL": f"jun@{FQDN}", "GIT_COMMITTER_NAME": "Jun",
               "GIT_COMMITTER_EMAIL": f"jun@{FQDN}"}
    sent = c.run("cd && git init -q repo && cd repo && echo hello > file && git add file && "
                 "git commit -q -m 'Add a file' && git format-patch -q -1 -o ../patches && "
                 f"git send-email --confirm=never --no-chain-reply-to --from='Jun <jun@{FQDN}>' "
                 f"--to=root@{FQDN} ../patches/*.patch", user="jun", env=git_env)
    sent = (sent.stdout + sent.stderr).decode(errors="replace")
    assert "Sendmail: /usr/sbin/sendmail " in sent, sent
    box = wait_mail(c, "root", r"^Subject: \[PATCH\] Add a file$")
    assert "+hello\n" in box

    # SMTP on the default address, and mailq for a user.
    smtp = ("import smtplib; s = smtplib.SMTP('127.0.0.1', 25, timeout=30); "
            "s.sendmail('someone@example.org', ['jun@localhost'], 'Subject: over SMTP\\r\\n\\r\\nhello\\r\\n'); s.quit()")
    c.host([sys.executable, "-c", smtp], ns=["--net"])
    wait_mail(c, "jun", r"^Subject: over SMTP$")
    assert c.run(["mailq"], user="jun").returncode == 0
    assert "status=sent" in maillog(c)
    mailbox = os.stat(c.path("/var/mail/jun"))
    assert (mailbox.st_uid, oct(mailbox.st_mode & 0o777)) == (int(ids(c, "passwd", "jun").split(":")[2]), oct(0o600))

    # dpkg-reconfigure writes the answers to the lines it owns, and keeps
    # the rest of the file.
    c.run(["debconf-set-selections"], input=(
        "hikyaku hikyaku/main_mailer_type select Satellite system\n"
        "hikyaku hikyaku/relayhost string [relay.example.net]:587\n"))
    c.run(["dpkg-reconfigure", "-fnoninteractive", "hikyaku"])
    conf = c.read("/etc/hikyaku/hikyaku.conf")
    assert re.search(r"(?m)^smart_host = \[relay\.example\.net\]:587$", conf), conf
    assert re.search(r"(?m)^smtpd_listen = 127\.0\.0\.1:25$", conf), conf
    assert re.search(r"(?m)^maillog_file = /var/log/hikyaku\.log$", conf), conf
    assert len(re.findall(r"(?m)^smart_host =", conf)) == 1, conf
    c.run(["debconf-set-selections"], input="hikyaku hikyaku/main_mailer_type select Internet Site\n")
    c.run(["dpkg-reconfigure", "-fnoninteractive", "hikyaku"])
    conf = c.read("/etc/hikyaku/hikyaku.conf")
    assert re.search(r"(?m)^smtpd_listen = 0\.0\.0\.0:25(, \[::\]:25)?$", conf), conf
    assert re.search(r"(?m)^smart_host = $", conf), conf
    assert re.search(r"(?m)^maillog_file = /var/log/hikyaku\.log$", conf), conf
    # As the postinst's restart under systemd: new listening addresses.
    stop_master(c)
    start_master(c)
    assert "00000000:0019" in listening(c), maillog(c)  # 0.0.0.0:25

    stop_master(c)
    started = time.time()
    c.apt("purge", "hikyaku")
    log(f"apt-get purge: {time.time() - started:.0f} s")
    check_purged(c)
    # Shared files stay.
    assert "hikyaku-marker: jun\n" in c.read("/etc/aliases")
    assert c.read("/etc/mailname") == FQDN + "\n"


def test_upgrade_keeps_queued_mail(chroot, deb, upgrade_deb):
    c = chroot
    new_deb, new_version = upgrade_deb
    c.run(["useradd", "--create-home", "--shell", "/bin/sh", "jun"])
    install(c, deb)
    log_to_file(c)
    start_master(c)
    # Mail for another host waits in deferred/: this network namespace has
    # no route anywhere.
    c.run(["/usr/sbin/sendmail", "-i", "someone@example.org"], input="Subject: for elsewhere\n\nwaits\n")
    deadline = time.time() + 60
    while not os.listdir(c.path("/var/spool/hikyaku/deferred")) and time.time() < deadline:
        time.sleep(0.2)
    assert os.listdir(c.path("/var/spool/hikyaku/deferred")), maillog(c)
    stop_master(c)

    # Submitted while the mail system is stopped: it waits in maildrop/.
    c.run("printf 'Subject: queued before the upgrade\\n\\nkept\\n' | /usr/sbin/sendmail -i root", user="jun")
    assert len(os.listdir(c.path("/var/spool/hikyaku/maildrop"))) == 1
    # An edit by hand, to a line the questions wrote too: an upgrade keeps it.
    with open(c.path("/etc/hikyaku/hikyaku.conf")) as f:
        conf = f.read().replace("smart_host = \n", "smart_host = [relay.example.net]\n")
    with open(c.path("/etc/hikyaku/hikyaku.conf"), "w") as f:
        f.write(conf)

    started = time.time()
    install(c, new_deb)
    log(f"upgrade: {time.time() - started:.0f} s")
    assert status(c, "hikyaku") == "ii " + new_version
    assert c.read("/etc/hikyaku/hikyaku.conf") == conf
    assert "root hikyaku-drop 2755 /usr/lib/hikyaku/hikyaku-drop" in c.out(["dpkg-statoverride", "--list"])
    helper = os.stat(c.path("/usr/lib/hikyaku/hikyaku-drop"))
    assert oct(helper.st_mode & 0o7777) == oct(0o2755)
    assert len(os.listdir(c.path("/var/spool/hikyaku/maildrop"))) == 1
    assert len(os.listdir(c.path("/var/spool/hikyaku/deferred"))) == 1

    start_master(c)
    box = wait_mail(c, "root", r"^Subject: queued before the upgrade$")
    assert f"Return-Path: <jun@{FQDN}>" in box
    assert "someone@example.org" in c.out(["mailq"], user="jun")
    assert c.out(["hikyaku", "check"]).startswith("hikyaku: configuration")
    stop_master(c)
    c.apt("purge", "hikyaku")
    check_purged(c)
