#!/bin/bash
# The relay benchmark: 5,000 messages (1 KiB) into the MTA over 20 sessions,
# relayed to Postfix's smtp-sink on 127.0.0.1:2626, hikyaku then Postfix,
# each sending everything for relay.test to the sink.
#   Benchmarks/relay-bench.sh [REPS]        (default 3)
# Env: BENCH_DIR (default ../shared/bench), SKIP_POSTFIX=1, SKIP_HIKYAKU=1,
#      HIKYAKU_BENCH_BIN=DIR (run the programs in DIR, build nothing).
# `make bench` runs this workload too (Benchmarks/run-bench.sh, "relay").
# Needs root (Postfix's package, port 2525). Results: Benchmarks/results/relay-*.jsonl.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_DIR:-$(cd "$top/../shared/bench" && pwd)}
reps=${1:-3}
results="$top/Benchmarks/results"
mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)
out="$results/relay-$stamp.jsonl"
export BENCH_TOOLS=${BENCH_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/mta-bench-tools}
ls "$BENCH_TOOLS"/postfix-*/bin/smtp-sink >/dev/null 2>&1 || "$bench/setup-loadgen"
if [ -n "${HIKYAKU_BENCH_BIN:-}" ]; then
    bin=$(cd "$HIKYAKU_BENCH_BIN" && pwd)
else
    bin="$top/.build/release"
fi

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/2525) 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

run_hikyaku() {
    [ -n "${HIKYAKU_BENCH_BIN:-}" ] || (cd "$top" && flock /tmp/hikyaku-build.lock swift build -c release)
    local root="$top/run-bench"
    rm -rf "$root"
    mkdir -p "$root/etc"
    : > "$root/etc/local-host-names"
    "$top/Packaging/create-users.sh"
    cat > "$root/etc/hikyaku.conf" <<CONF
queue_directory = $root/spool
daemon_directory = $bin
smtpd_listen = 127.0.0.1:2525
maillog_file = $root/maillog
alias_file = /etc/aliases
local_host_names_file = $root/etc/local-host-names
smart_host = [127.0.0.1]:2626
CONF
    "$bin/master" -c "$root/etc/hikyaku.conf" &
    local master=$!
    wait_port
    for _ in $(seq "$reps"); do
        python3 "$top/Benchmarks/relay_bench.py" --name hikyaku --target 127.0.0.1:2525 --bench-dir "$bench" | tee -a "$out"
    done
    kill -TERM "$master"; wait "$master" || true
}

run_postfix() {
    "$bench/anchor-postfix" install >/dev/null
    cp /etc/postfix/main.cf /etc/postfix/main.cf.relay-bench
    postconf -e 'relayhost = [127.0.0.1]:2626' 'default_transport = smtp' 'relay_transport = smtp'
    "$bench/anchor-postfix" start
    for _ in $(seq "$reps"); do
        python3 "$top/Benchmarks/relay_bench.py" --name postfix --target 127.0.0.1:2525 --bench-dir "$bench" | tee -a "$out"
    done
    "$bench/anchor-postfix" stop
    mv /etc/postfix/main.cf.relay-bench /etc/postfix/main.cf
}

[ -n "${SKIP_HIKYAKU:-}" ] || run_hikyaku
[ -n "${SKIP_POSTFIX:-}" ] || run_postfix
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["mta"], []).append(r)
for mta, rs in by.items():
    print(f"{mta}: accept {statistics.median(r['accept_rate'] for r in rs)} msg/s, "
          f"relay {statistics.median(r['relay_rate'] for r in rs)} msg/s over {len(rs)} runs")
if "hikyaku" in by and "postfix" in by:
    h = statistics.median(r["relay_rate"] for r in by["hikyaku"])
    p = statistics.median(r["relay_rate"] for r in by["postfix"])
    print(f"relay ratio hikyaku/postfix: {h / p:.2f}")
PY
