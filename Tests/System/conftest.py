"""System-test harness: starts the real hikyaku master with its real
programs in a temporary root, with real users, and talks to it over real
sockets.  Tests run as root (the privilege model needs it) and create their
users idempotently."""
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

import pytest

BIN = os.environ.get("HIKYAKU_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", ".build", "debug")
BIN = os.path.abspath(BIN)
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
USERS = ["hkt-alice", "hkt-bob", "hkt-carol", "hkt-dave"]
HOSTNAME = "mail.example.test"


def install_setgid_helper():
    """hikyaku-drop is setgid hikyaku-drop, as the package installs it."""
    helper = os.path.join(BIN, "hikyaku-drop")
    if os.path.exists(helper):
        shutil.chown(helper, "root", "hikyaku-drop")
        os.chmod(helper, 0o2755)


def ensure_users():
    subprocess.run([os.path.join(TOP, "Packaging", "create-users.sh")], check=True)
    install_setgid_helper()
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", user], check=True)
        home = pwd.getpwnam(user).pw_dir
        if not os.path.isdir(home):
            os.makedirs(home)
            entry = pwd.getpwnam(user)
            os.chown(home, entry.pw_uid, entry.pw_gid)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mail_processes(config_path):
    """PIDs of every process started with this configuration."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if config_path.encode() in cmd:
            found.append(int(pid))
    return found


def proc_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


class MTA:
    def __init__(self, root, port, config_extra="", aliases=None):
        self.root = root
        self.port = port
        self.etc = os.path.join(root, "etc")
        self.spool = os.path.join(root, "spool")
        self.mail = os.path.join(root, "mail")
        self.maillog = os.path.join(root, "maillog")
        self.config = os.path.join(self.etc, "hikyaku.conf")
        os.makedirs(self.etc)
        os.makedirs(self.mail)
        os.chmod(root, 0o755)
        shutil.chown(self.mail, "root", "mail")
        os.chmod(self.mail, 0o2775)
        with open(os.path.join(self.etc, "aliases"), "w") as f:
            f.write(aliases if aliases is not None else
                    "# test aliases\npostmaster: root\nteam: hkt-alice, hkt-bob\n"
                    "Crew: team, hkt-carol\n")
        with open(os.path.join(self.etc, "local-host-names"), "w") as f:
            f.write("example.test\n")
        self.write_config(config_extra)
        self.process = None

    def write_config(self, extra=""):
        with open(self.config, "w") as f:
            f.write(f"""myhostname = {HOSTNAME}
queue_directory = {self.spool}
daemon_directory = {BIN}
smtpd_listen = 127.0.0.1:{self.port}
maillog_file = {self.maillog}
mail_spool_directory = {self.mail}
alias_file = {self.etc}/aliases
local_host_names_file = {self.etc}/local-host-names
{extra}
""")

    def start(self, timeout=30):
        self.output = open(os.path.join(self.root, "master.out"), "ab")
        self.process = subprocess.Popen([os.path.join(BIN, "master"), "-c", self.config],
                                        stdout=self.output, stderr=self.output,
                                        start_new_session=True)
        self.wait_ready(timeout)

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"master exited: {self.process.returncode}: " + self.log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(5)
                    if s.recv(100).startswith(b"220 "):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("MTA did not become ready: " + self.log())

    def stop(self, timeout=20):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def reload(self):
        self.process.send_signal(signal.SIGHUP)

    def pids(self):
        """{program name: [pids]} of the running programs."""
        out = {}
        for pid in mail_processes(self.config):
            name = proc_name(pid)
            if name:
                out.setdefault(name, []).append(pid)
        return out

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=30, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(re.findall(pattern, self.log(), re.M)) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"log never matched {pattern!r} x{count}:\n" + self.log()[-4000:])

    def mbox(self, user):
        path = os.path.join(self.mail, user)
        with open(path, "rb") as f:
            return f.read()

    def wait_mbox(self, user, messages, timeout=30):
        path = os.path.join(self.mail, user)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(path):
                data = self.mbox(user)
                if len(re.findall(rb"^From ", data, re.M)) >= messages:
                    return data
            time.sleep(0.05)
        raise AssertionError(f"{user} never got {messages} message(s):\n" + self.log()[-4000:])

    def queue_files(self, queue):
        path = os.path.join(self.spool, queue)
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def wait_queue_empty(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not any(self.queue_files(q) for q in ("incoming", "active", "tmp")):
                return
            time.sleep(0.1)
        raise AssertionError("queue never emptied: " + str({q: self.queue_files(q) for q in ("incoming", "active", "tmp", "deferred")}))

    def smtp(self):
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.example.org", timeout=30)


@pytest.fixture(scope="session", autouse=True)
def users():
    if os.geteuid() != 0:
        pytest.skip("system tests need root (they create users and check privilege separation)")
    ensure_users()
    return USERS


def clear_mailboxes():
    for user in USERS:
        home = pwd.getpwnam(user).pw_dir
        shutil.rmtree(os.path.join(home, "Maildir"), ignore_errors=True)


@pytest.fixture
def make_mta(users, tmp_path_factory):
    created = []

    def factory(config_extra="", aliases=None, start=True):
        clear_mailboxes()
        root = tempfile.mkdtemp(prefix="hikyaku-test-", dir="/tmp")
        mta = MTA(root, free_port(), config_extra, aliases)
        created.append(mta)
        if start:
            mta.start()
        return mta

    yield factory
    for mta in created:
        try:
            mta.stop()
        finally:
            leftovers = mail_processes(mta.config)
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            assert not leftovers, f"processes left behind after SIGTERM: {leftovers}"
            if not os.environ.get("HIKYAKU_KEEP_TEST_ROOT"):
                shutil.rmtree(mta.root, ignore_errors=True)
    clear_mailboxes()


@pytest.fixture
def mta(make_mta):
    return make_mta()
