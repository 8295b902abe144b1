# hikyaku: build, run and test. See README.md.
SWIFT ?= swift
# Debian's Python: the system tests need python3-pytest and
# python3-flufl.bounce, which a pyenv python3 on PATH does not see.
PYTHON ?= /usr/bin/python3
BIN := $(CURDIR)/.build/debug

.PHONY: all build run test unit-test system-test check-privilege lint-man bench clean fuzz fuzz-smoke deb deb-test

all: build

build:
	$(SWIFT) build

# A complete MTA under ./run/, listening on 127.0.0.1:2525, in the foreground.
run: build
	./Packaging/make-run.sh

# The package test (deb-test) builds the release package and installs it
# in a Debian 12 chroot: lintian, systemd-analyze verify, postfix replaced,
# real mail programs, upgrade and purge.
test: build check-privilege lint-man unit-test fuzz-smoke system-test deb-test

unit-test:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# libFuzzer targets for the SMTP command parser and state machine, the DATA
# framer and the address parsers (Fuzz/README.md). fuzz-smoke is the bounded
# run CI does; the saved regression inputs run first.
FUZZ_TIME ?= 600
fuzz:
	Fuzz/run.sh regressions
	Fuzz/run.sh all $(FUZZ_TIME)

fuzz-smoke:
	Fuzz/run.sh regressions
	Fuzz/run.sh all 20

# System tests start the real master with real programs, users and clients.
system-test: build
	HIKYAKU_BIN=$(BIN) $(PYTHON) -m pytest -q -x Tests/System

# Only Sources/HikyakuSystem/Privilege.swift may change root directory or
# credentials.
check-privilege:
	@bad=$$(grep -rnE '\b(chroot|setgroups|initgroups|setuid|setgid|seteuid|setegid|setreuid|setregid|setresuid|setresgid)[[:space:]]*\(' Sources \
		| grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' \
		| grep -v '^Sources/HikyakuSystem/Privilege.swift:' || true); \
	if [ -n "$$bad" ]; then echo "privilege calls outside Privilege.swift:" >&2; echo "$$bad" >&2; exit 1; fi; \
	echo "check-privilege: only Sources/HikyakuSystem/Privilege.swift changes privileges"

lint-man:
	@out=$$(mandoc -Tlint -W warning man/*.[1-8] 2>&1); \
	if [ -n "$$out" ]; then echo "$$out" >&2; exit 1; fi; echo "lint-man: man pages clean"

# The Debian package hikyaku_VERSION_amd64.deb (Packaging/build-deb.sh): a
# release build with the Swift standard library linked in, then dpkg-deb.
deb:
	SWIFT="$(SWIFT)" ./Packaging/build-deb.sh

# The package installed over Debian's postfix in a Debian 12 chroot, used
# by real mail programs, upgraded and purged (Tests/System/test_debian_package.py;
# needs debootstrap, lintian, and deb.debian.org the first time, when the
# chroot is made and cached in /var/cache/hikyaku-test). Builds the package
# of this checkout first (`make deb`).
deb-test: deb
	HIKYAKU_DEB=$$(ls -t $(CURDIR)/hikyaku_*_amd64.deb | head -n 1) HIKYAKU_DEB_TEST=1 \
		$(PYTHON) -m pytest -q Tests/System/test_debian_package.py

# hikyaku beside Debian's Postfix (Benchmarks/README.md), as root. Builds the
# release programs under /tmp/hikyaku-build.lock (never two builds at once),
# or uses HIKYAKU_BENCH_BIN=DIR; REPS, WORKLOADS, BENCH_IDLE=1, SKIP_POSTFIX=1.
bench:
	./Benchmarks/run-bench.sh

clean:
	rm -rf .build run hikyaku_*.deb
