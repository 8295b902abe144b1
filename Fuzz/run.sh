#!/bin/sh
# Builds and runs hikyaku's libFuzzer targets (see Fuzz/README.md).
#
#   Fuzz/run.sh TARGET [SECONDS]   build if needed, fuzz TARGET for SECONDS (default 60)
#   Fuzz/run.sh all [SECONDS]      every target in turn
#   Fuzz/run.sh build [TARGET|all] only build
#   Fuzz/run.sh regressions        run the saved inputs of Fuzz/regressions/ once
#
# Targets: smtp-command, data-framer, address. The exit status is not zero
# when a target crashed, hung, leaked or ran out of memory; the input is
# then in .build/fuzz/artifacts/TARGET/. Extra libFuzzer options can be
# given in FUZZ_ARGS (for example FUZZ_ARGS=-jobs=2).
set -eu

cd "$(dirname "$0")/.."
SWIFTC=${SWIFTC:-swiftc}
OUT=.build/fuzz
TARGETS="smtp-command data-framer address"
# The SMTP and address sources are pure Swift: they import nothing but the
# standard library (checked below), so swiftc builds them without SwiftPM.
FLAGS="-O -parse-as-library -swift-version 6 -sanitize=fuzzer,address -use-ld=lld"

max_len() {
    case $1 in
        smtp-command) echo 4096 ;;
        data-framer) echo 4096 ;;
        address) echo 600 ;;
    esac
}

# Whether $1 is missing or older than any of the other files.
stale() {
    out=$1
    shift
    [ -e "$out" ] || return 0
    for f in "$@"; do
        [ "$f" -nt "$out" ] && return 0
    done
    return 1
}

compile_module() {
    name=$1
    shift
    sources=$(ls Sources/"$name"/*.swift)
    if grep -hE '^[[:space:]]*(@[A-Za-z_]+[[:space:]]+)?import ' $sources | grep -vqE 'import (MailCore|Swift|Glibc)$'; then
        echo "Fuzz/run.sh: Sources/$name imports a module the fuzz build does not provide" >&2
        exit 1
    fi
    if stale "$OUT/obj/$name.o" $sources Fuzz/run.sh "$@"; then
        echo "compiling $name"
        # shellcheck disable=SC2086
        "$SWIFTC" $FLAGS -wmo -module-name "$name" -I "$OUT/modules" -c $sources \
            -emit-module -emit-module-path "$OUT/modules/$name.swiftmodule" -o "$OUT/obj/$name.o"
        # swiftc leaves an object alone when its content is unchanged.
        touch "$OUT/obj/$name.o"
    fi
}

build() {
    mkdir -p "$OUT/obj" "$OUT/modules"
    compile_module MailCore
    compile_module SMTPProtocol "$OUT/obj/MailCore.o"
    for target in "$@"; do
        source=Fuzz/$target.swift
        [ -f "$source" ] || { echo "Fuzz/run.sh: no target $target (one of: $TARGETS)" >&2; exit 2; }
        if stale "$OUT/$target" "$source" Fuzz/FuzzSupport.swift Fuzz/run.sh "$OUT/obj/MailCore.o" "$OUT/obj/SMTPProtocol.o"; then
            echo "compiling $target"
            module=$(echo "Fuzz_$target" | tr -- - _)
            # shellcheck disable=SC2086
            "$SWIFTC" $FLAGS -module-name "$module" -I "$OUT/modules" "$source" Fuzz/FuzzSupport.swift \
                "$OUT/obj/MailCore.o" "$OUT/obj/SMTPProtocol.o" -o "$OUT/$target"
        fi
    done
}

# libFuzzer's handlers report crashes; Swift's backtracer would only slow
# them down (and can outlive the process).
SWIFT_BACKTRACE=enable=no
export SWIFT_BACKTRACE

fuzz() {
    target=$1
    seconds=$2
    build "$target"
    mkdir -p "$OUT/corpus/$target" "$OUT/artifacts/$target"
    dict=""
    [ -f "Fuzz/dict/$target.dict" ] && dict="-dict=Fuzz/dict/$target.dict"
    echo "fuzzing $target for $seconds seconds"
    # The first corpus directory collects new inputs; the seeds in Fuzz/ are read only.
    # shellcheck disable=SC2086
    "$OUT/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$target")" \
        -artifact_prefix="$OUT/artifacts/$target/" -print_final_stats=1 $dict ${FUZZ_ARGS:-} \
        "$OUT/corpus/$target" "Fuzz/corpus/$target"
}

regressions() {
    build $TARGETS
    status=0
    for target in $TARGETS; do
        [ -d "Fuzz/regressions/$target" ] || continue
        files=$(find "Fuzz/regressions/$target" -type f)
        [ -n "$files" ] || continue
        # shellcheck disable=SC2086
        "$OUT/$target" -runs=1 $files || status=1
    done
    return $status
}

what=${1:-}
seconds=${2:-60}
case $what in
    all)
        status=0
        for target in $TARGETS; do
            fuzz "$target" "$seconds" || { echo "Fuzz/run.sh: $target failed" >&2; status=1; }
        done
        exit $status
        ;;
    build)
        if [ "${2:-all}" = all ]; then build $TARGETS; else build "$2"; fi
        ;;
    regressions)
        regressions
        ;;
    smtp-command|data-framer|address)
        fuzz "$what" "$seconds"
        ;;
    *)
        echo "usage: Fuzz/run.sh smtp-command|data-framer|address|all [SECONDS] | build [TARGET] | regressions" >&2
        exit 2
        ;;
esac
