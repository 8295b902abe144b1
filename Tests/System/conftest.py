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
import threading
import time

import pytest

BIN = os.environ.get("HIKYAKU_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", ".build", "debug")
BIN = os.path.abspath(BIN)
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
USERS = ["hkt-alice", "hkt-bob", "hkt-carol", "hkt-dave"]
HOSTNAME = "mail.example.test"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DEAD_DNS_PORT = free_port()


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


def kill_all(pids):
    """SIGKILL each process that still exists."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


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
# No test asks this machine's DNS: a name server nobody answers at, unless
# the test starts its own (dns_server) and names it below.
dns_resolver = 127.0.0.1:{DEAD_DNS_PORT}
dns_timeout = 1s
dns_attempts = 1
# No STARTTLS unless a test gives smtpd a certificate (test_tls.py).
smtpd_tls_security_level = none
# TCP wrappers' files of the test root (none unless a test writes them),
# not this machine's.
smtpd_hosts_allow_file = {self.etc}/hosts.allow
smtpd_hosts_deny_file = {self.etc}/hosts.deny
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
            kill_all(leftovers)
            assert not leftovers, f"processes left behind after SIGTERM: {leftovers}"
            if not os.environ.get("HIKYAKU_KEEP_TEST_ROOT"):
                shutil.rmtree(mta.root, ignore_errors=True)
    clear_mailboxes()


@pytest.fixture
def mta(make_mta):
    return make_mta()


class DNSServer:
    """A running dnsmasq that answers for test zones; see the dns_server
    fixture."""

    def __init__(self, process, port, root, upstreams, ipv6):
        self.process = process
        self.port = port
        self.root = root
        self.upstreams = upstreams
        self.ipv6 = ipv6

    @property
    def address(self):
        """127.0.0.1:PORT, the value for dns_resolver."""
        return f"127.0.0.1:{self.port}"

    @property
    def config(self):
        """A hikyaku.conf line that sends every lookup to this server."""
        return f"dns_resolver = {self.address}"

    def log(self):
        """dnsmasq's query log: one 'query[MX] name from ...' line per question."""
        try:
            with open(os.path.join(self.root, "dnsmasq.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def queries(self, name=None):
        """The questions asked so far, as (type, name), optionally for one name."""
        found = re.findall(r"query\[(\w+)\] (\S+) from", self.log())
        return [(t, n) for t, n in found if name is None or n == name]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.upstreams.close()


class FailingUpstreams:
    """Two upstream servers for dnsmasq's --server: one answers every
    question with SERVFAIL, the other reads questions and never answers."""

    def __init__(self):
        self.servfail = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.servfail.bind(("127.0.0.1", 0))
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.silent.bind(("127.0.0.1", 0))
        self.thread = threading.Thread(target=self.answer_servfail, daemon=True)
        self.thread.start()

    @property
    def servfail_port(self):
        return self.servfail.getsockname()[1]

    @property
    def silent_port(self):
        return self.silent.getsockname()[1]

    def answer_servfail(self):
        while True:
            try:
                query, peer = self.servfail.recvfrom(65535)
            except OSError:
                return
            if len(query) < 12:
                continue
            # The question back, with QR, RD and RA set and RCODE 2.
            reply = query[:2] + bytes([0x80 | (query[2] & 0x01), 0x82]) + query[4:6] + b"\0" * 6 + query[12:]
            try:
                self.servfail.sendto(reply, peer)
            except OSError:
                return

    def close(self):
        for sock in (self.servfail, self.silent):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.thread.join(5)


def dns_query(port, name, qtype="MX", host="127.0.0.1", timeout=2.0):
    """Sends one question over UDP and returns the reply's RCODE (0 NOERROR,
    2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED), or None when nothing came back."""
    types = {"A": 1, "CNAME": 5, "MX": 15, "AAAA": 28}
    qid = os.getpid() & 0xFFFF
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label) + b"\0"
    packet = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question \
        + types[qtype].to_bytes(2, "big") + b"\x00\x01"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, (host, port))
        try:
            reply, _ = s.recvfrom(65535)
        except socket.timeout:
            return None
    return reply[3] & 0x0F


@pytest.fixture
def dns_server():
    """Starts a real DNS server (dnsmasq from Debian's dnsmasq-base, no
    service, nothing on port 53) with records given per test, and stops it
    at the end of the test.

    Usage:
        dns = dns_server(
            mx={"example.test": [("mx1.example.test", 10), ("mx2.example.test", 20)]},
            hosts={"mx1.example.test": ["127.0.0.1", "::1"]},   # A and AAAA
            cnames={"alias.example.test": "example.test"},
            null_mx=["null.example.test"],                      # MX 0 . (RFC 7505)
            txt={"nomail.example.test": "v=spf1 -all"},  # a name with no MX, A or AAAA
            servfail=["broken.test"],     # these domains and their subdomains: SERVFAIL
            timeout=["slow.test"],        # these: never answered (the client times out)
            records=[("txt.example.test", 16, "0568656c6c6f")], # any type, RDATA in hex
            local=["test"],               # unknown names under these: NXDOMAIN
            ipv6=True)                    # listen on [::1]:PORT too
        mta = make_mta(config_extra=dns.config + "\ndns_timeout = 1s\ndns_attempts = 1")

    Every argument is optional. Names outside `local` that no argument
    names are refused (the server has no upstream), which a resolver
    treats as a temporary failure. The returned DNSServer has `port`,
    `address` ("127.0.0.1:PORT"), `config` (the dns_resolver line),
    `log()` and `queries(name)` (every question asked, from dnsmasq's
    query log), and `stop()`. dnsmasq answers with TTL 0, so nothing is
    cached between questions. `dns_query(port, name, qtype)` in this
    module asks it directly and returns the RCODE."""
    started = []

    def start(mx=None, hosts=None, cnames=None, null_mx=(), txt=None, servfail=(), timeout=(), records=(),
              local=("test",), ipv6=False):
        root = tempfile.mkdtemp(prefix="hikyaku-dns-", dir="/tmp")
        upstreams = FailingUpstreams()
        args = []
        for domain in local:
            args.append(f"--local=/{domain}/")
        for domain, targets in (mx or {}).items():
            for target, preference in targets:
                args.append(f"--mx-host={domain},{target},{preference}")
        for name, addresses in (hosts or {}).items():
            args.append(f"--host-record={name}," + ",".join(addresses))
        for alias, target in (cnames or {}).items():
            args.append(f"--cname={alias},{target}")
        for domain in null_mx:
            args.append(f"--dns-rr={domain},15,000000")
        for name, text in (txt or {}).items():
            args.append(f"--txt-record={name},{text}")
        for name, rrtype, hexdata in records:
            args.append(f"--dns-rr={name},{rrtype},{hexdata}")
        for domain in servfail:
            args.append(f"--server=/{domain}/127.0.0.1#{upstreams.servfail_port}")
        for domain in timeout:
            args.append(f"--server=/{domain}/127.0.0.1#{upstreams.silent_port}")
        error = ""
        for _ in range(5):
            # A port free for TCP is almost always free for UDP too; when
            # it is not, dnsmasq says so and another is tried.
            port = free_port()
            assert port != 53
            listen = ["--listen-address=127.0.0.1"] + (["--listen-address=::1"] if ipv6 else [])
            with open(os.path.join(root, "dnsmasq.err"), "wb") as err:
                process = subprocess.Popen(
                    ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                     "--no-poll", f"--port={port}", "--bind-interfaces", "--user=root", "--group=root",
                     f"--pid-file={root}/dnsmasq.pid", f"--log-facility={root}/dnsmasq.log", "--log-queries"]
                    + listen + args,
                    stdout=subprocess.DEVNULL, stderr=err)
            server = DNSServer(process, port, root, upstreams, ipv6)
            deadline = time.time() + 10
            while time.time() < deadline and process.poll() is None:
                # A name outside every zone: REFUSED at once once it listens.
                if dns_query(port, "ready.invalid", "A", timeout=0.2) is not None:
                    started.append(server)
                    return server
            process.kill()
            process.wait()
            with open(os.path.join(root, "dnsmasq.err"), errors="replace") as f:
                error = f.read()
            if "in use" not in error:
                break
        upstreams.close()
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"dnsmasq did not start: {error or 'no answer within 10 seconds'}")

    yield start
    for server in started:
        server.stop()
        if not os.environ.get("HIKYAKU_KEEP_TEST_ROOT"):
            shutil.rmtree(server.root, ignore_errors=True)
