#!/bin/bash
# make bench: the shared load harness (../shared/bench) against hikyaku and
# Postfix on this machine, one after the other, same workloads, same
# durability (both fsync before 250 and at delivery).
#   Benchmarks/run-bench.sh [REPS]          (default 3)
# Env: WORKLOADS (default "a b c d"; see ../shared/bench/README.md),
#      BENCH_DIR (default ../shared/bench), SKIP_POSTFIX=1, SKIP_HIKYAKU=1.
# Needs root (users, Postfix's package, port 2525). Results go to
# Benchmarks/results/*.jsonl; the table is printed at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_DIR:-$(cd "$top/../shared/bench" && pwd)}
reps=${1:-3}
export WORKLOADS=${WORKLOADS:-a b c d}
export SENDMAIL=
results="$top/Benchmarks/results"
mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)

"$bench/setup-users" >/dev/null

run_hikyaku() {
    (cd "$top" && swift build -c release)
    local root="$top/run-bench"
    rm -rf "$root"
    mkdir -p "$root/etc"
    echo "bench.test" > "$root/etc/local-host-names"
    "$top/Packaging/create-users.sh"
    cat > "$root/etc/hikyaku.conf" <<CONF
queue_directory = $root/spool
daemon_directory = $top/.build/release
smtpd_listen = 127.0.0.1:2525
maillog_file = $root/maillog
home_mailbox = Maildir/
alias_file = /etc/aliases
local_host_names_file = $root/etc/local-host-names
CONF
    "$top/.build/release/master" -c "$root/etc/hikyaku.conf" &
    local master=$!
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/2525) 2>/dev/null && break
        sleep 0.1
    done
    OUT="$results/hikyaku-$stamp.jsonl" "$bench/bench-suite" hikyaku 127.0.0.1:2525 "$root/spool/pid/master.pid" "$reps" || true
    kill -TERM "$master"; wait "$master" || true
}

run_postfix() {
    "$bench/anchor-postfix" install >/dev/null
    "$bench/anchor-postfix" start
    OUT="$results/postfix-$stamp.jsonl" "$bench/bench-suite" postfix 127.0.0.1:2525 /var/spool/postfix/pid/master.pid "$reps" || true
    "$bench/anchor-postfix" stop
}

[ -n "${SKIP_HIKYAKU:-}" ] || run_hikyaku
[ -n "${SKIP_POSTFIX:-}" ] || run_postfix
python3 "$top/Benchmarks/compare.py" "$results"/hikyaku-$stamp.jsonl "$results"/postfix-$stamp.jsonl
