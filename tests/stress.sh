#!/bin/bash
# Stress: the thread, signal and JIT differential programs (and the real
# checks with threads, worker processes and job control) run N times in a
# row, natively and under dbo, compared as tests/diff.sh and tests/real.sh
# compare them. Races that show up once in twenty runs show up here.
#
# Time is bounded: every run has a timeout, a check that has timed out
# twice is not run again (its remaining runs count as failed), and once
# the deadline has passed nothing more is started (the rest counts as
# failed too). Ends with "N passed, N failed"; exits nonzero on a failure.
#
# usage: tests/stress.sh [N] [FILTER]   N runs of each check (default 20);
#                                       FILTER: checks whose name contains it
# env:   DBO (default $BUILD/dbo), BUILD (default build), JOBS (parallel
#        runs, default 2), TIMEOUT (seconds per run, default 20), DEADLINE
#        (seconds for everything, default 1800), FLAVOURS (of the programs,
#        default "pie static"; diff.sh's are "pie nopie static static-pie")
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
BUILD=${BUILD:-build}
OUT=$ROOT/$BUILD/tests/stress
SRC=$ROOT/tests/programs
DBO=$(realpath -m "${DBO:-$BUILD/dbo}")
JOBS=${JOBS:-2}
TIMEOUT=${TIMEOUT:-20}
DEADLINE=${DEADLINE:-1800}
FLAVOURS=${FLAVOURS:-pie static}
MAX_HANGS=2
# The programs (tests/programs/NAME.c or .cc) and the real.sh checks.
PROGRAMS="thr_churn thr_exit thr_sigstorm thr_fork thr_exec sig_restart sig_mask sig_chld
    sig_default jit_threads jit_dualmap tls_threads fpstate"
REAL_CHECKS="pythreads pymultiproc bashjobs make"
# The same fixed environment and stdin as diff.sh.
ENVIRON=(PATH=/usr/bin:/bin HOME=/nonexistent LC_ALL=C TZ=UTC DBO_TEST=1)

describe_status() {
    local s=$1
    if [ "$s" = 124 ] || [ "$s" = 137 ]; then
        echo "timeout (hang)"
    elif [ "$s" -gt 128 ]; then
        echo "signal $((s - 128)) ($(kill -l $((s - 128)) 2>/dev/null))"
    else
        echo "exit $s"
    fi
}

# first_diff A B: where two files first differ, on one short line.
first_diff() {
    local where line
    where=$(cmp "$1" "$2" 2>&1 | head -1)
    case $where in
    *"line "*)
        line=${where##*line }
        printf "line %s: native '%.70s' dbo '%.70s'" "$line" "$(sed -n "${line}p" "$1")" \
            "$(sed -n "${line}p" "$2")"
        ;;
    *EOF*) echo "lengths differ ($(wc -l <"$1") native lines, $(wc -l <"$2") dbo lines)" ;;
    *) echo "$where" ;;
    esac
}

# run_to PREFIX CMD...: as in diff.sh, with this script's timeout.
run_to() {
    local prefix=$1
    shift
    {
        (
            ulimit -c 0
            exec env -i "${ENVIRON[@]}" timeout -k 2 "$TIMEOUT" "$@" \
                <"$RUN_DIR/stdin.txt" >"$prefix.out" 2>"$prefix.err"
        )
        echo $? >"$prefix.status"
    } 2>/dev/null
}

# record ID ITER RESULT [MESSAGE]
record() {
    echo "$3" >"$RUN_DIR/results/$1.$2"
    [ -z "${4:-}" ] || echo "FAIL run $2 $1: $4"
}

# skipped ID ITER WHY: a run not started counts as failed (said once)
skipped() {
    echo fail >"$RUN_DIR/results/$1.$2"
    if mkdir "$RUN_DIR/said.$1" 2>/dev/null; then
        echo "FAIL run $2 $1 and later runs: $3"
    fi
}

# skip_reason ID: why a run is not started, or nothing
skip_reason() {
    if [ "$(date +%s)" -ge "$(cat "$RUN_DIR/deadline")" ]; then
        echo "not run: the deadline (${DEADLINE}s) has passed"
    elif [ "$(cat "$RUN_DIR/hangs/$1" 2>/dev/null || echo 0)" -ge $MAX_HANGS ]; then
        echo "not run: timed out $MAX_HANGS times already"
    fi
}

count_hang() {
    local f=$RUN_DIR/hangs/$1
    echo $(($(cat "$f" 2>/dev/null || echo 0) + 1)) >"$f"
}

is_hang() { [ "$1" = 124 ] || [ "$1" = 137 ]; }

# run_program ITER FLAVOUR NAME: one differential run.
run_program() {
    local iter=$1 flavour=$2 name=$3 id=$2-$3 why
    why=$(skip_reason "$id")
    if [ -n "$why" ]; then
        skipped "$id" "$iter" "$why"
        return
    fi
    local work=$RUN_DIR/work/$id.$iter bin=$ROOT/$BUILD/tests/$flavour/$name problems=() ns ds
    mkdir -p "$work/run" && cd "$work/run" || return
    run_to "$work/native" "$bin"
    rm -rf "$work/run" && mkdir -p "$work/run" && cd "$work/run" || return
    run_to "$work/dbo" "$DBO" "$bin"
    cd "$OUT" || return
    ns=$(cat "$work/native.status") ds=$(cat "$work/dbo.status")
    [ "$ns" = 0 ] || problems+=("BROKEN: native run gave $(describe_status "$ns")")
    [ "$ns" = "$ds" ] || problems+=("status native $(describe_status "$ns"), dbo $(describe_status "$ds")")
    cmp -s "$work/native.out" "$work/dbo.out" ||
        problems+=("stdout $(first_diff "$work/native.out" "$work/dbo.out")")
    cmp -s "$work/native.err" "$work/dbo.err" ||
        problems+=("stderr $(first_diff "$work/native.err" "$work/dbo.err")")
    if [ ${#problems[@]} -eq 0 ]; then
        rm -rf "$work"
        record "$id" "$iter" pass
        return
    fi
    if is_hang "$ns" || is_hang "$ds"; then count_hang "$id"; fi
    # keep the outputs of this run's first failure of each check
    local keep=$OUT/failed/$id summary
    if mkdir "$RUN_DIR/kept.$id" 2>/dev/null; then
        rm -rf "$keep" && mkdir -p "$OUT/failed" && mv "$work" "$keep"
    fi
    rm -rf "$work"
    summary=$(printf '%s; ' "${problems[@]}")
    record "$id" "$iter" fail "${summary%; } [first failure in ${keep#"$ROOT"/}]"
}

# run_real ITER CHECK: one tests/real.sh check (native and dbo).
run_real() {
    local iter=$1 name=$2 id=real-$2 why
    why=$(skip_reason "$id")
    if [ -n "$why" ]; then
        skipped "$id" "$iter" "$why"
        return
    fi
    local log
    log=$(BUILD=$BUILD DBO=$DBO JOBS=1 TIMEOUT=$TIMEOUT "$ROOT/tests/real.sh" "$name" 2>&1)
    if printf '%s\n' "$log" | grep -qx '1 passed, 0 failed'; then
        record "$id" "$iter" pass
    else
        printf '%s\n' "$log" | grep -q 'timeout' && count_hang "$id"
        # real.sh drops its kept outputs when a later run passes: copy them
        local kept=$ROOT/$BUILD/tests/real/failed/$name keep=$OUT/failed/$id
        if mkdir "$RUN_DIR/kept.$id" 2>/dev/null && [ -d "$kept" ]; then
            rm -rf "$keep" && mkdir -p "$OUT/failed" && cp -r "$kept" "$keep"
        fi
        record "$id" "$iter" fail "$(printf '%s\n' "$log" | grep -m1 '^FAIL' |
            sed "s/^FAIL //; s|\[outputs in [^]]*\]|[first failure in ${keep#"$ROOT"/}]|")"
    fi
}

case ${1:-} in
--run) # internal: one run, started by xargs below
    shift
    kind=$1
    shift
    if [ "$kind" = program ]; then run_program "$@"; else run_real "$@"; fi
    exit 0
    ;;
esac

N=${1:-20}
FILTER=${2:-}
if ! [[ $N =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: tests/stress.sh [N] [FILTER]" >&2
    exit 2
fi
if [ ! -x "$DBO" ]; then
    echo "stress.sh: $DBO does not exist or is not executable (run make all)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
programs=() reals=()
for p in $PROGRAMS; do [[ $p == *"$FILTER"* ]] && programs+=("$p"); done
for c in $REAL_CHECKS; do [[ $c == *"$FILTER"* ]] && reals+=("$c"); done
if [ $((${#programs[@]} + ${#reals[@]})) -eq 0 ]; then
    echo "stress.sh: no check matches '$FILTER'" >&2
    exit 2
fi

mkdir -p "$OUT"
RUN_DIR=$(mktemp -d "$OUT/run.XXXXXX")
export RUN_DIR BUILD DBO TIMEOUT OUT
trap 'rm -rf "$RUN_DIR"' EXIT
mkdir -p "$RUN_DIR/results" "$RUN_DIR/work" "$RUN_DIR/hangs"
echo $(($(date +%s) + DEADLINE)) >"$RUN_DIR/deadline"
# the same stdin as diff.sh gives its programs
printf '%s\n' "first line of input" "12 -7 3.25 token and the rest" >"$RUN_DIR/stdin.txt"

# Build with diff.sh's flags, into diff.sh's tree (its internal --build).
build_failed=0
for f in $FLAVOURS; do
    for p in "${programs[@]}"; do
        src=$SRC/$p.c
        [ -e "$src" ] || src=$SRC/$p.cc
        if ! BUILD=$BUILD "$ROOT/tests/diff.sh" --build "$f" "$src" ||
            [ ! -x "$ROOT/$BUILD/tests/$f/$p" ]; then
            echo "FAIL $f/$p: did not build"
            build_failed=1
        fi
    done
done

echo "stress: ${#programs[@]} programs x $(echo $FLAVOURS | wc -w) flavours + ${#reals[@]} real checks, $N runs each, $JOBS at a time, ${TIMEOUT}s per run, ${DEADLINE}s in all"
for i in $(seq 1 "$N"); do
    for p in "${programs[@]}"; do
        for f in $FLAVOURS; do
            [ -x "$ROOT/$BUILD/tests/$f/$p" ] && printf 'program %s %s %s\n' "$i" "$f" "$p"
        done
    done
    for c in "${reals[@]}"; do printf 'real %s %s\n' "$i" "$c"; done
done | xargs -L 1 -P "$JOBS" "$ROOT/tests/stress.sh" --run

# per check: how many of the N runs passed
for r in "$RUN_DIR"/results/*; do
    [ -e "$r" ] || continue
    id=$(basename "$r")
    echo "${id%.*} $(cat "$r")"
done | sort | awk '{ n[$1]++; if ($2 == "pass") p[$1]++ }
    END { for (k in n) if (p[k] < n[k]) printf "  %-28s %d of %d runs passed\n", k, p[k], n[k] }' | sort

passed=$(grep -lx pass "$RUN_DIR"/results/* 2>/dev/null | wc -l)
failed=$(grep -lx fail "$RUN_DIR"/results/* 2>/dev/null | wc -l)
[ "$build_failed" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
