"""The manual pages keep up with the code: every configuration key the
programs know is described in hikyaku.conf(5) with its default, and every
program the master runs has a page of its own.

These checks read files and run `hikyaku config show`; they need neither
root nor a running mail system."""
import os
import re
import subprocess

import pytest

from conftest import BIN, TOP

MAN = os.path.join(TOP, "man")
CONF_PAGE = os.path.join(MAN, "hikyaku.conf.5")
PARAMETERS = os.path.join(TOP, "Sources", "HikyakuConfig", "ConfigParameter.swift")
SERVICES = os.path.join(TOP, "Sources", "Master", "ServiceTable.swift")
# What the service table held when this test was written; the table is
# read from the source, and must still name at least these.
KNOWN_PROGRAMS = {"aliasd", "local", "smtp-client", "cleanup", "qmgr", "pickup", "showq", "smtpd"}


@pytest.fixture(scope="session", autouse=True)
def users():
    """Overrides conftest's: these checks create no users and need no root."""
    return []


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def documented_keys():
    """KEY -> the text after `Pq Default:` of each `.It Cm KEY` item."""
    keys = {}
    for line in read(CONF_PAGE).splitlines():
        match = re.match(r"^\.It Cm (\S+)(?: Pq Default: (.*))?$", line)
        if match:
            keys[match.group(1)] = match.group(2)
    return keys


def shown_keys(tmp_path):
    """The keys `hikyaku config show` prints for an empty configuration."""
    hikyaku = os.path.join(BIN, "hikyaku")
    assert os.access(hikyaku, os.X_OK), f"{hikyaku} is not built"
    config = tmp_path / "hikyaku.conf"
    config.write_text("# empty: every key at its default\n")
    result = subprocess.run([hikyaku, "config", "show", "-c", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    keys = []
    for line in result.stdout.splitlines():
        match = re.match(r"^(\S+) =", line)
        assert match, f"unexpected line from hikyaku config show: {line!r}"
        keys.append(match.group(1))
    return keys


def test_every_key_of_config_show_is_documented(tmp_path):
    keys = shown_keys(tmp_path)
    assert len(keys) > 40, keys
    documented = documented_keys()
    missing = [key for key in keys if key not in documented]
    assert not missing, f"keys without an '.It Cm KEY' item in man/hikyaku.conf.5: {missing}"
    without_default = [key for key in keys if documented[key] is None]
    assert not without_default, f"items without 'Pq Default: VALUE' in man/hikyaku.conf.5: {without_default}"


def test_documented_defaults_are_the_table_defaults(tmp_path):
    """The `Pq Default:` of each key is the default in ConfigParameter.swift
    (`empty` for an empty one), and the page documents no key the table
    does not have."""
    table = dict(re.findall(r'ConfigParameter\(\s*"([^"]+)",\s*"([^"]*)"', read(PARAMETERS)))
    assert set(shown_keys(tmp_path)) <= set(table), "ConfigParameter.swift did not parse as expected"
    documented = documented_keys()
    wrong = {key: (documented.get(key), value or "empty") for key, value in table.items()
             if key in documented and documented[key] != (value or "empty")}
    assert not wrong, f"man/hikyaku.conf.5 default differs from ConfigParameter.swift (page, table): {wrong}"
    missing = sorted(set(table) - set(documented))
    assert not missing, f"keys in ConfigParameter.swift without an item in man/hikyaku.conf.5: {missing}"
    stale = sorted(key for key, default in documented.items() if default is not None and key not in table)
    assert not stale, f"man/hikyaku.conf.5 describes keys that do not exist: {stale}"


def service_programs():
    programs = set(re.findall(r'program:\s*"([^"]+)"', read(SERVICES)))
    assert KNOWN_PROGRAMS <= programs, f"ServiceTable.swift did not parse as expected: {programs}"
    return programs


def test_every_program_the_master_runs_has_a_manual_page():
    problems = []
    for program in sorted(service_programs() | {"master"}):
        path = os.path.join(MAN, f"{program}.8")
        if not os.path.exists(path):
            problems.append(f"{program}: no man/{program}.8")
            continue
        text = read(path)
        if not re.search(rf"^\.Dt {re.escape(program.upper())} 8$", text, re.M):
            problems.append(f"man/{program}.8: no '.Dt {program.upper()} 8'")
        if not re.search(rf"^\.Sh NAME\n\.Nm {re.escape(program)}$", text, re.M):
            problems.append(f"man/{program}.8: NAME is not '.Nm {program}'")
    assert not problems, problems


def test_master_page_names_every_program():
    master = read(os.path.join(MAN, "master.8"))
    missing = [program for program in sorted(service_programs())
               if not re.search(rf"^\.Xr {re.escape(program)} 8\b", master, re.M)]
    assert not missing, f"man/master.8 does not refer to: {missing}"
