#!/bin/bash
# The idle-sessions benchmark (issue 6): SESSIONS SMTP sessions (5,000) that
# read the greeting, say EHLO and then wait, held open while MESSAGES (100)
# ordinary messages go through over fresh connections, every reply timed (max
# and p99 must stay under 1 s); then, with the sessions still open, the peak
# RSS of smtpd and the memory of all the MTA's processes. hikyaku first, then
# Postfix from Debian (one smtpd process per session), same load.
#   Benchmarks/idle-bench.sh
# Env: SESSIONS (5000), MESSAGES (100), REPS (1: runs per MTA), BENCH_DIR
#      (../shared/bench), HIKYAKU_BENCH_BIN=DIR (the programs to run; default
#      .build/release when it has been built, else .build/debug, or
#      HIKYAKU_BUILD=release|debug; this script builds nothing), HIKYAKU_PORT
#      (2625; Postfix's listener is the anchor's 127.0.0.1:2525),
#      SKIP_HIKYAKU=1, SKIP_POSTFIX=1, KEEP_POSTFIX=1 (leave the postfix
#      package installed when this script installed it), OUT (the JSONL file
#      to append to), ANCHOR_POSTFIX (the anchor-postfix script to use;
#      run-bench.sh passes a copy that writes nothing under shared/).
# Needs root. Results: Benchmarks/results/idle-STAMP.jsonl (or OUT), one JSON
# line per MTA and run (fields in Benchmarks/idle_bench.py); the table of the
# last run of each MTA is printed at the end. `make bench` runs this with
# BENCH_IDLE=1 (Benchmarks/run-bench.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_DIR:-$(cd "$top/../shared/bench" && pwd)}
sessions=${SESSIONS:-5000}
messages=${MESSAGES:-100}
port=${HIKYAKU_PORT:-2625}
results="$top/Benchmarks/results"
mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)
out=${OUT:-$results/idle-$stamp.jsonl}
reps=${REPS:-1}
anchor=${ANCHOR_POSTFIX:-$bench/anchor-postfix}
rc=0

# The load generator holds every session itself, hikyaku's smtpd holds them
# all in one process, and both inherit this limit.
ulimit -n "$(ulimit -Hn)"
need=$((sessions + 1000))
if [ "$(ulimit -n)" -lt "$need" ]; then
    echo "open file limit $(ulimit -n) is below $need; raise the hard limit (ulimit -Hn) first" >&2
    exit 1
fi

"$bench/setup-users" >/dev/null
maildir="$(getent passwd bench | cut -d: -f6)/Maildir"

wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

run_hikyaku() {
    local build=${HIKYAKU_BUILD:-} bin
    if [ -n "${HIKYAKU_BENCH_BIN:-}" ]; then
        bin=$(cd "$HIKYAKU_BENCH_BIN" && pwd); build=$(basename "$bin")
    else
        if [ -z "$build" ]; then
            if [ -x "$top/.build/release/smtpd" ]; then build=release; else build=debug; fi
        fi
        bin="$top/.build/$build"
    fi
    [ -x "$bin/master" ] || { echo "no hikyaku build in $bin (swift build -c release)" >&2; return 1; }
    local root="$top/run-idle-bench"
    rm -rf "$root"
    mkdir -p "$root/etc"
    echo "bench.test" > "$root/etc/local-host-names"
    "$top/Packaging/create-users.sh" >/dev/null
    cat > "$root/etc/hikyaku.conf" <<CONF
queue_directory = $root/spool
daemon_directory = $bin
smtpd_listen = 127.0.0.1:$port
maillog_file = $root/maillog
home_mailbox = Maildir/
alias_file = /etc/aliases
local_host_names_file = $root/etc/local-host-names
# the sessions are held longer than the default 300 s could allow on a slow run
smtpd_timeout = 3600s
CONF
    "$bin/master" -c "$root/etc/hikyaku.conf" &
    local master=$!
    wait_port "$port"
    echo "hikyaku ($build build), master pid $master, $sessions idle sessions" >&2
    for _ in $(seq "$reps"); do
        python3 "$top/Benchmarks/idle_bench.py" --name hikyaku --label "$build" --target "127.0.0.1:$port" \
            --master-pid "$master" --sessions "$sessions" --messages "$messages" --maildir "$maildir" \
            | tee -a "$out" || rc=1
        sleep 3
    done
    kill -TERM "$master"
    wait "$master" || true
}

run_postfix() {
    local installed_before=no
    dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "ok installed" && installed_before=yes
    "$anchor" install >/dev/null
    cp /etc/postfix/main.cf /etc/postfix/main.cf.idle-bench
    # One smtpd process per session: the process limit must admit them all
    # (default_process_limit is 100, and the anchor's 2525 service uses it).
    # Loopback is in mynetworks, so anvil's per-client limits do not apply.
    postconf -e "default_process_limit = $((sessions + 200))" 'smtpd_timeout = 3600s'
    "$anchor" start
    local master
    master=$(tr -d ' \n' < /var/spool/postfix/pid/master.pid)
    echo "postfix, master pid $master, $sessions idle sessions" >&2
    for _ in $(seq "$reps"); do
        python3 "$top/Benchmarks/idle_bench.py" --name postfix --target 127.0.0.1:2525 \
            --master-pid "$master" --sessions "$sessions" --messages "$messages" --maildir "$maildir" \
            | tee -a "$out" || rc=1
        sleep 3
    done
    "$anchor" stop
    mv /etc/postfix/main.cf.idle-bench /etc/postfix/main.cf
    if [ "$installed_before" = no ] && [ -z "${KEEP_POSTFIX:-}" ]; then
        "$anchor" purge >/dev/null
    fi
}

[ -n "${SKIP_HIKYAKU:-}" ] || run_hikyaku || rc=1
[ -n "${SKIP_POSTFIX:-}" ] || run_postfix || rc=1

python3 - "$out" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("workload") == "idle":
        rows[r["mta"]] = r
def mib(kib):
    return f"{kib / 1024:.1f}"
fields = [
    ("idle sessions held", lambda r: f"{r['sessions_open']}/{r['sessions']}"),
    ("seconds to open them", lambda r: f"{r['open_seconds']}"),
    ("messages accepted / delivered", lambda r: f"{r['accepted']}/{r.get('delivered', '-')}"),
    ("reply latency max ms", lambda r: f"{r['latency_max_ms']}"),
    ("reply latency p99 ms", lambda r: f"{r['latency_p99_ms']}"),
    ("reply latency p50 ms", lambda r: f"{r['latency_p50_ms']}"),
    ("whole message max ms", lambda r: f"{r['message_max_ms']}"),
    ("smtpd processes", lambda r: f"{r['smtpd_procs']}"),
    ("smtpd peak RSS MiB (VmHWM summed)", lambda r: mib(r["smtpd_hwm_kib_sum"])),
    ("all processes", lambda r: f"{r['procs']}"),
    ("all processes RSS MiB (summed)", lambda r: mib(r["all_rss_kib_sum"])),
    ("all processes PSS MiB (summed)", lambda r: mib(r["all_pss_kib_sum"])),
]
names = [n for n in ("hikyaku", "postfix") if n in rows]
print(f"| {'':36} | " + " | ".join(f"{n:>10}" for n in names) + (" | hikyaku/postfix |" if len(names) == 2 else " |"))
print("|" + "-" * 38 + "|" + "|".join("-" * 12 for _ in names) + ("|-----------------|" if len(names) == 2 else "|"))
ratios = {"smtpd peak RSS MiB (VmHWM summed)": ("smtpd_hwm_kib_sum", "smtpd_hwm_kib_sum"),
          "all processes RSS MiB (summed)": ("all_rss_kib_sum", "all_rss_kib_sum"),
          "all processes PSS MiB (summed)": ("all_pss_kib_sum", "all_pss_kib_sum"),
          "reply latency max ms": ("latency_max_ms", "latency_max_ms"),
          "reply latency p99 ms": ("latency_p99_ms", "latency_p99_ms")}
for label, get in fields:
    cells = " | ".join(f"{get(rows[n]):>10}" for n in names)
    ratio = ""
    if len(names) == 2:
        ratio = " |"
        if label in ratios:
            h, p = rows["hikyaku"][ratios[label][0]], rows["postfix"][ratios[label][1]]
            ratio = f" | {h / p:15.3f} |" if p else " |"
        else:
            ratio = " |" + " " * 17 + "|"
    print(f"| {label:36} | {cells}{ratio if len(names) == 2 else ' |'}")
if len(names) == 2:
    h, p = rows["hikyaku"], rows["postfix"]
    print(f"\nhikyaku smtpd peak RSS {mib(h['smtpd_hwm_kib_sum'])} MiB for {h['sessions_open']} idle sessions; "
          f"Postfix, all processes: RSS {mib(p['all_rss_kib_sum'])} MiB (PSS {mib(p['all_pss_kib_sum'])} MiB) "
          f"over {p['procs']} processes; ratio smtpd/Postfix total RSS {h['smtpd_hwm_kib_sum'] / p['all_rss_kib_sum']:.3f}")
print(f"results: {sys.argv[1]}")
PY
exit $rc
