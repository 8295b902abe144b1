#!/bin/bash
# make bench: the same workloads against hikyaku (a release build) and
# Postfix from Debian (../shared/bench/anchor-postfix), one after the other
# in one run, then one table: median (min-max) of every figure over REPS
# runs, and the ratio hikyaku/Postfix. See Benchmarks/README.md.
#   Benchmarks/run-bench.sh [REPS]          (default 3, or $REPS)
# Env: WORKLOADS (default "a b c s relay deferred"; also d; idle is added
#        by BENCH_IDLE=1), REPS, SKIP_POSTFIX=1, SKIP_HIKYAKU=1,
#      HIKYAKU_BENCH_BIN=DIR  use the hikyaku programs in DIR, build nothing
#        (default: `flock /tmp/hikyaku-build.lock swift build -c release`,
#        then .build/release),
#      N_A N_B N_C N_D N_S N_RELAY  messages per workload (5000 1000 200 200
#        200 5000), DEFERRED_N (100000), DEFERRED_SCAN_TIMEOUT (1200 s),
#      BENCH_IDLE=1 also the idle-sessions check (Benchmarks/idle-bench.sh:
#        SESSIONS 5000, MESSAGES 100; Postfix takes minutes to open them),
#      HIKYAKU_BENCH_CONFIG  lines added to hikyaku.conf (trying a setting),
#      BENCH_QUIET_WAIT=S wait up to S s for an idle machine before each run,
#      BENCH_DIR (default ../shared/bench), BENCH_TOOLS (where smtp-sink is
#        extracted; default ~/.cache/mta-bench-tools).
# Needs root (users, Postfix's package, ports 2525/2626/2627). Results:
# Benchmarks/results/bench-STAMP.jsonl (one JSON line per run) and
# Benchmarks/results/bench-STAMP.md (the table, also printed).
# Postfix is stopped and purged at the end, whatever happens.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH_DIR:-$(cd "$top/../shared/bench" && pwd)}
reps=${1:-${REPS:-3}}
workloads=${WORKLOADS:-a b c s relay deferred}
if [ -n "${BENCH_IDLE:-}" ] && [[ " $workloads " != *" idle "* ]]; then workloads="$workloads idle"; fi
results="$top/Benchmarks/results"
mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)
out="$results/bench-$stamp.jsonl"
table="$results/bench-$stamp.md"
log="$results/bench-$stamp.log"
: > "$out"
# shared/ is read-only for us: the harness's tools go to a cache folder
export BENCH_TOOLS=${BENCH_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/mta-bench-tools}
py=python3
rc=0
declare -A nmsgs=([a]=${N_A:-} [b]=${N_B:-} [c]=${N_C:-} [d]=${N_D:-} [s]=${N_S:-} [relay]=${N_RELAY:-})
deferred_n=${DEFERRED_N:-100000}
scan_timeout=${DEFERRED_SCAN_TIMEOUT:-1200}
sink_port=2626     # smtp-sink, for relay
dead_port=2627     # nothing listens: the deferred workload's destination

[ "$(id -u)" = 0 ] || { echo "run-bench.sh: needs root" >&2; exit 1; }
for p in 2525 $sink_port $dead_port; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "run-bench.sh: something already listens on 127.0.0.1:$p" >&2; exit 1
    fi
done

# hikyaku's programs: a given directory, or a release build made under the
# build lock (never two builds at once on this machine)
if [ -n "${HIKYAKU_BENCH_BIN:-}" ]; then
    bin=$(cd "$HIKYAKU_BENCH_BIN" && pwd)
elif [ -z "${SKIP_HIKYAKU:-}" ]; then
    (cd "$top" && flock /tmp/hikyaku-build.lock swift build -c release)
    bin="$top/.build/release"
fi
if [ -z "${SKIP_HIKYAKU:-}" ]; then
    for p in master smtpd cleanup qmgr local smtp-client pickup showq sendmail hikyaku; do
        [ -x "$bin/$p" ] || { echo "run-bench.sh: no $bin/$p" >&2; exit 1; }
    done
fi

"$bench/setup-users" >/dev/null
[ -x "$BENCH_TOOLS/postfix-3.7.11/bin/smtp-sink" ] || ls "$BENCH_TOOLS"/postfix-*/bin/smtp-sink >/dev/null 2>&1 \
    || "$bench/setup-loadgen" >/dev/null

# anchor-postfix writes `postconf -n` into its own results/ folder: run a
# copy of it from a scratch folder, so that nothing under shared/ changes
anchor_dir=$(mktemp -d /tmp/bench-anchor.XXXXXX)
cp "$bench/anchor-postfix" "$anchor_dir/"
ln -s "$bench/setup-users" "$bench/bench-suite" "$anchor_dir/"
mkdir "$anchor_dir/results"
anchor="$anchor_dir/anchor-postfix"
postfix_installed_before=no
dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "ok installed" && postfix_installed_before=yes
master_pid=

cleanup() {
    set +e
    if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
        kill -TERM "$master_pid"; wait "$master_pid" 2>/dev/null
    fi
    if command -v postfix >/dev/null 2>&1 && [ -f /var/spool/postfix/pid/master.pid ]; then
        "$anchor" stop >/dev/null 2>&1
    fi
    if [ "$postfix_installed_before" = no ] && dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "installed"; then
        "$anchor" purge >/dev/null 2>&1
    fi
    rm -rf "$anchor_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

has() { [[ " $workloads " == *" $1 "* ]]; }

# one run of each SMTP/sendmail workload, REPS times, against the MTA on 2525
run_workloads() {   # NAME PIDFILE SENDMAIL
    local name=$1 pidfile=$2 sendmail=$3 r w
    for r in $(seq 1 "$reps"); do
        for w in a b c d s relay; do
            has "$w" || continue
            local n=()
            [ -n "${nmsgs[$w]}" ] && n=(-n "${nmsgs[$w]}")
            $py "$top/Benchmarks/mta_bench.py" --mta "$name" --workload "$w" --rep "$r" --target 127.0.0.1:2525 \
                --pidfile "$pidfile" --sendmail "$sendmail" --sink-port "$sink_port" --bench-dir "$bench" \
                --json "$out" "${n[@]}" || rc=1
        done
    done
}

# hikyaku ----------------------------------------------------------------
hroot="$top/run-bench"
hconf() {   # SMART_HOST_PORT
    cat > "$hroot/etc/hikyaku.conf" <<CONF
queue_directory = $hroot/spool
daemon_directory = $bin
smtpd_listen = 127.0.0.1:2525
maillog_file = $hroot/maillog
home_mailbox = Maildir/
alias_file = /etc/aliases
local_host_names_file = $hroot/etc/local-host-names
smart_host = [127.0.0.1]:$1
${HIKYAKU_BENCH_CONFIG:-}
CONF
}
hstart() {
    "$bin/master" -c "$hroot/etc/hikyaku.conf" &
    master_pid=$!
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/2525) 2>/dev/null && [ -f "$hroot/spool/pid/master.pid" ] && return 0
        sleep 0.1
    done
    echo "hikyaku does not listen on 127.0.0.1:2525" >&2
    return 1
}
hstop() {
    kill -TERM "$master_pid"; wait "$master_pid" || true
    master_pid=
}

run_hikyaku() {
    echo "== hikyaku ($bin)"
    rm -rf "$hroot"
    mkdir -p "$hroot/etc"
    echo "bench.test" > "$hroot/etc/local-host-names"
    "$top/Packaging/create-users.sh"
    hconf "$sink_port"
    export HIKYAKU_CONFIG="$hroot/etc/hikyaku.conf"
    hstart
    run_workloads hikyaku "$hroot/spool/pid/master.pid" "$bin/sendmail"
    hstop
    if has deferred; then
        hconf "$dead_port"
        for r in $(seq 1 "$reps"); do
            hstart   # a fresh qmgr for each run: its peak RSS is this run's
            $py "$top/Benchmarks/deferred_bench.py" --mta hikyaku --rep "$r" --target 127.0.0.1:2525 \
                --pidfile "$hroot/spool/pid/master.pid" --deferred-dir "$hroot/spool/deferred" \
                --log "$hroot/maillog" --flush "'$bin/sendmail' -q" --mailq "'$bin/sendmail' -bp" \
                --delete "'$bin/hikyaku' queue delete -c '$HIKYAKU_CONFIG' ALL" \
                -n "$deferred_n" --scan-timeout "$scan_timeout" --bench-dir "$bench" --json "$out" || rc=1
            hstop
        done
    fi
    unset HIKYAKU_CONFIG
}

# Postfix ----------------------------------------------------------------
run_postfix() {
    echo "== postfix (Debian's, through anchor-postfix)"
    "$anchor" install >/dev/null
    cp "$anchor_dir/results/postfix-main.cf.n" "$results/bench-$stamp-postfix-main.cf.n" 2>/dev/null || true
    # relay.test (and anything not local) to the sink; a log file, since no
    # syslog runs here (hikyaku logs to its maillog file too)
    postconf -e "relayhost = [127.0.0.1]:$sink_port" 'default_transport = smtp' 'relay_transport = smtp' \
                'maillog_file = /var/log/postfix-bench.log'
    rm -f /var/log/postfix-bench.log
    "$anchor" start
    run_workloads postfix /var/spool/postfix/pid/master.pid /usr/sbin/sendmail
    "$anchor" stop >/dev/null
    if has deferred; then
        postconf -e "relayhost = [127.0.0.1]:$dead_port"
        for r in $(seq 1 "$reps"); do
            "$anchor" start >/dev/null
            $py "$top/Benchmarks/deferred_bench.py" --mta postfix --rep "$r" --target 127.0.0.1:2525 \
                --pidfile /var/spool/postfix/pid/master.pid --deferred-dir /var/spool/postfix/deferred \
                --log /var/log/postfix-bench.log --flush "/usr/sbin/sendmail -q" --mailq "/usr/bin/mailq" \
                --delete "/usr/sbin/postsuper -d ALL" \
                -n "$deferred_n" --scan-timeout "$scan_timeout" --bench-dir "$bench" --json "$out" || rc=1
            "$anchor" stop >/dev/null
        done
    fi
    cp /var/log/postfix-bench.log "$results/bench-$stamp-postfix.maillog" 2>/dev/null || true
    if [ "$postfix_installed_before" = no ]; then "$anchor" purge; fi
}

exec > >(tee "$log") 2>&1
[ -n "${SKIP_HIKYAKU:-}" ] || run_hikyaku || rc=1
[ -n "${SKIP_POSTFIX:-}" ] || run_postfix || rc=1
if has idle; then
    echo "== idle sessions (Benchmarks/idle-bench.sh)"
    HIKYAKU_BENCH_BIN="${bin:-}" ANCHOR_POSTFIX="$anchor" REPS="$reps" OUT="$out" \
        "$top/Benchmarks/idle-bench.sh" || rc=1
fi
$py "$top/Benchmarks/compare.py" "$out" | tee "$table"
echo "results: $out, table: $table, log: $log"
exit $rc
