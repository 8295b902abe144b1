"""testssl.sh (Debian's testssl.sh package) against smtpd's TLS: STARTTLS on
the SMTP port, and implicit TLS on the smtps port. Neither may offer SSL,
TLS 1.0 or TLS 1.1; both must offer TLS 1.2 and 1.3; no NULL, anonymous,
export, low, 3DES/IDEA or RC4 cipher; no vulnerability testssl.sh knows;
no finding of severity HIGH or CRITICAL. Only the protocol (-p), cipher
category (-s) and vulnerability (-U) checks run, without DNS, OCSP or CRL
lookups (there is no network), so each scan takes well under a minute."""
import json
import os
import shutil
import subprocess
import time

import pytest

from test_tls import certificate, tls_mta  # noqa: F401 (the fixture and what it uses)

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")

OLD_PROTOCOLS = ["SSLv2", "SSLv3", "TLS1", "TLS1_1"]
WEAK_CIPHER_CATEGORIES = ["cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                          "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"]  # AVERAGE: CBC suites (smtpd_tls_cipherlist)
# ticketbleed is only tried over HTTPS.
VULNERABILITIES = ["heartbleed", "CCS", "ROBOT", "secure_renego", "secure_client_renego",
                   "CRIME_TLS", "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "LOGJAM",
                   "BEAST", "LUCKY13", "RC4"]


def run_testssl(target, root, starttls):
    """Runs testssl.sh; returns its findings by id, and how long it took."""
    report = os.path.join(root, f"testssl-{'starttls' if starttls else 'implicit'}.json")
    command = [TESTSSL, "--quiet", "--color", "0", "--warnings", "batch", "--nodns", "none",
               "--connect-timeout", "10", "--openssl-timeout", "10", "-p", "-s", "-U",
               "--jsonfile", report]
    if starttls:
        command += ["--starttls", "smtp"]
    started = time.monotonic()
    run = subprocess.run(command + [target], capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    assert os.path.exists(report), run.stdout + run.stderr
    with open(report) as f:
        findings = json.load(f)
    by_id = {}
    for finding in findings:
        by_id.setdefault(finding["id"], []).append(finding)
    return by_id, took, run.stdout


def check(by_id, output, starttls):
    def finding(key):
        assert key in by_id, f"testssl.sh reported nothing for {key}:\n{output}"
        return " ".join(f["finding"] for f in by_id[key])
    # (engine_problem, about GOST in Debian's openssl, says nothing of the server.)
    problems = [f for f in sum(by_id.values(), []) if f["id"] == "scanProblem" or f["severity"] == "FATAL"]
    assert not problems, problems
    if starttls:
        assert finding("service") == "smtp"
    # (On smtps testssl.sh cannot tell the service, and skips the HTTP checks.)
    for old in OLD_PROTOCOLS:
        assert finding(old).startswith("not offered"), (old, by_id[old])
    assert finding("TLS1_2").startswith("offered"), by_id["TLS1_2"]
    assert finding("TLS1_3").startswith("offered"), by_id["TLS1_3"]
    for category in WEAK_CIPHER_CATEGORIES:
        assert finding(category) == "not offered", (category, by_id[category])
    # testssl.sh writes VULNERABLE in capitals for a real one ("potentially
    # vulnerable", LUCKY13's LOW note about CBC ciphers, is not one).
    for name in VULNERABILITIES:
        assert "VULNERABLE" not in finding(name), (name, by_id[name])
    assert not [f for f in sum(by_id.values(), []) if "VULNERABLE" in f["finding"]]
    severe = [f for f in sum(by_id.values(), []) if f["severity"] in ("HIGH", "CRITICAL")]
    assert not severe, severe


@pytest.mark.skipif(TESTSSL is None, reason="testssl.sh is not installed (Debian package testssl.sh)")
def test_testssl_starttls_and_smtps(tls_mta):
    mta = tls_mta()
    by_id, took, output = run_testssl(f"127.0.0.1:{mta.port}", mta.root, starttls=True)
    print(f"testssl.sh --starttls smtp: {took:.1f} s")
    check(by_id, output, starttls=True)
    by_id, took, output = run_testssl(f"127.0.0.1:{mta.smtps_port}", mta.root, starttls=False)
    print(f"testssl.sh on smtps: {took:.1f} s")
    check(by_id, output, starttls=False)
