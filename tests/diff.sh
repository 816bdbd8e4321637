#!/bin/bash
# Differential tests: every program in tests/programs, built in four
# flavours, run natively and under dbo with the same arguments, stdin and
# environment; stdout, stderr and exit status (incl. death by signal) must
# be identical. Each program is also run once (PIE) with --no-fsgsbase and
# once with --return-stack (static), --inline-targets and --fp-xsave
# (static-pie) and --fragment-branches=0 (non-PIE), the translation choices
# not taken by default, once (PIE) with a 128K cache that keeps being flushed (and the
# return stack, whose pads a flush takes away), and twice
# with traces built after 2 or 3 runs of a head (non-PIE with indirect
# branches followed, static-pie with a 256K cache).
#
# usage: tests/diff.sh [--native-only] [FILTER]
#   FILTER        run only programs whose name contains FILTER
#   --native-only build and run natively only (checks the tests themselves)
# env:   DBO (default $BUILD/dbo), BUILD (default build), JOBS (default 2)
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
BUILD=${BUILD:-build}
OUT=$ROOT/$BUILD/tests
SRC=$ROOT/tests/programs
DBO=$(realpath -m "${DBO:-$BUILD/dbo}")
JOBS=${JOBS:-2}
FLAVOURS="pie nopie static static-pie"
TIMEOUT=(timeout -k 5 20)
# A small fixed environment: nothing from the caller leaks into the runs.
ENVIRON=(PATH=/usr/bin:/bin HOME=/nonexistent LC_ALL=C TZ=UTC DBO_TEST=1)
# Not a differential test: its output differs under dbo on purpose.
SKIP="noexec_probe"

# --- per-program expectations ------------------------------------------

# The exit status a native run must produce; anything else means the
# check itself is broken (so it counts as failed, not passed).
expected_status() {
    case $1 in
    exit42) echo 42 ;;
    abort) echo 134 ;; # 128 + SIGABRT
    segv) echo 139 ;;  # 128 + SIGSEGV
    exec) echo 7 ;;    # the status of the shell it execs into
    args) echo 6 ;;    # argc
    stdio) echo 5 ;;   # lines read by getline
    *) echo 0 ;;
    esac
}

# Fixed command-line arguments (one per line).
program_args() {
    case $1 in
    args) printf '%s\n' alpha "two words" "" "--flag=1" "ünïcödé" ;;
    esac
}

make_stdin() {
    printf '%s\n' "first line of input" "12 -7 3.25 token and the rest" \
        "line three" "" "  spaced   words  here  " \
        "$(printf 'long%.0s' {1..1000})"
    printf 'last line, no newline'
}

# --- building ----------------------------------------------------------

flavour_flags() {
    case $1 in
    pie) echo "-fPIE -pie" ;;
    nopie) echo "-fno-pie -no-pie" ;;
    static) echo "-static" ;;
    static-pie) echo "-static-pie -fPIE" ;;
    esac
}

# build FLAVOUR SOURCE: compile one program unless it is up to date.
build() {
    local flavour=$1 src=$2 name cc std
    name=$(basename "${src%.*}")
    local bin=$OUT/$flavour/$name
    if [ "$bin" -nt "$src" ] && [ "$bin" -nt "$ROOT/tests/diff.sh" ]; then
        return 0
    fi
    case $src in
    *.cc) cc=g++ std=-std=gnu++17 ;;
    *) cc=gcc std=-std=gnu11 ;;
    esac
    mkdir -p "$OUT/$flavour"
    # shellcheck disable=SC2046
    if ! $cc $std -O2 -g -Wall -Wextra -Werror $(flavour_flags "$flavour") \
        -o "$bin.tmp.$$" "$src" -lm 2>"$bin.log.$$"; then
        echo "BUILD FAILED $flavour/$name:"
        sed 's/^/    /' "$bin.log.$$" | head -20
        rm -f "$bin.tmp.$$" "$bin.log.$$" "$bin" # no stale binary gets tested
        return 1
    fi
    # unique temporary names and an atomic rename: another run may be
    # building the same program at the same time
    rm -f "$bin.log.$$"
    mv -f "$bin.tmp.$$" "$bin"
}

# --- running -----------------------------------------------------------

# run_to PREFIX CMD...: run CMD in the current directory with the fixed
# environment and stdin, saving PREFIX.out/.err/.status. Core dumps are off
# (the crash tests would leave cores around); the braces with 2>/dev/null
# silence bash's own "Segmentation fault" report.
run_to() {
    local prefix=$1
    shift
    {
        (
            ulimit -c 0
            exec env -i "${ENVIRON[@]}" "${TIMEOUT[@]}" "$@" \
                <"$RUN_DIR/stdin.txt" >"$prefix.out" 2>"$prefix.err"
        )
        echo $? >"$prefix.status"
    } 2>/dev/null
}

# describe_status N: human-readable exit status.
describe_status() {
    local s=$1
    if [ "$s" = 124 ]; then
        echo "timeout"
    elif [ "$s" -gt 128 ]; then
        echo "signal $((s - 128)) ($(kill -l $((s - 128)) 2>/dev/null))"
    else
        echo "exit $s"
    fi
}

# excerpt A B: two lines, from a little before where they first differ.
excerpt() {
    local a=$1 b=$2 i=0 from pre=
    while [ $i -lt ${#a} ] && [ "${a:i:1}" = "${b:i:1}" ]; do i=$((i + 1)); done
    from=$((i > 20 ? i - 20 : 0))
    [ $from -gt 0 ] && pre=...
    printf "native '%s%.60s' dbo '%s%.60s'" "$pre" "${a:from}" "$pre" "${b:from}"
}

# first_diff A B: where two files first differ, on one short line.
first_diff() {
    local where line n
    where=$(cmp "$1" "$2" 2>&1 | head -1)
    n=$(diff "$1" "$2" | grep -c '^<')
    case $where in
    *"line "*)
        line=${where##*line }
        printf "line %s: %s (%s native lines differ)" "$line" \
            "$(excerpt "$(sed -n "${line}p" "$1")" "$(sed -n "${line}p" "$2")")" "$n"
        ;;
    *EOF*)
        echo "lengths differ ($(wc -l <"$1") native lines, $(wc -l <"$2") dbo lines)"
        ;;
    *) echo "$where" ;;
    esac
}

# check FLAVOUR PROGRAM [DBO-OPTION...]: one differential check.
check() {
    local flavour=$1 prog=$2
    shift 2
    local opts=("$@") opt="${*:-}"
    local label="$flavour/$prog${opt:+ $opt}"
    local id="$flavour-$prog${opt// /}"
    local bin=$OUT/$flavour/$prog
    local work=$RUN_DIR/work/$id
    local expect args=()
    expect=$(expected_status "$prog")
    while IFS= read -r a; do args+=("$a"); done < <(program_args "$prog")

    rm -rf "$work"
    mkdir -p "$work/run"
    cd "$work/run" || return 1
    run_to "$work/native" "$bin" "${args[@]}"
    local ns problems=()
    ns=$(cat "$work/native.status")
    if [ "$ns" != "$expect" ]; then
        problems+=("BROKEN: native run gave $(describe_status "$ns"), expected $(describe_status "$expect")")
    fi
    if [ "$NATIVE_ONLY" = 0 ]; then
        rm -rf "$work/run" && mkdir -p "$work/run" && cd "$work/run" || return 1
        run_to "$work/dbo" "$DBO" "${opts[@]}" "$bin" "${args[@]}"
        local ds
        ds=$(cat "$work/dbo.status")
        [ "$ns" = "$ds" ] ||
            problems+=("status native $(describe_status "$ns"), dbo $(describe_status "$ds")")
        cmp -s "$work/native.out" "$work/dbo.out" ||
            problems+=("stdout $(first_diff "$work/native.out" "$work/dbo.out")")
        cmp -s "$work/native.err" "$work/dbo.err" ||
            problems+=("stderr $(first_diff "$work/native.err" "$work/dbo.err")")
    fi
    cd "$OUT" || return 1
    if [ ${#problems[@]} -eq 0 ]; then
        rm -rf "$work" "$OUT/failed/$id" # (outputs of an earlier failure)
        echo pass >"$RUN_DIR/results/$id"
    else
        # keep the outputs where they can be found after this run
        local keep=$OUT/failed/$id summary
        rm -rf "$keep" && mkdir -p "$OUT/failed" && mv "$work" "$keep"
        summary=$(printf '%s; ' "${problems[@]}")
        echo "FAIL $label: ${summary%; } [outputs in ${keep#"$ROOT"/}]"
        echo fail >"$RUN_DIR/results/$id"
    fi
}

# --- main --------------------------------------------------------------

NATIVE_ONLY=${NATIVE_ONLY:-0}
if [ "${1:-}" = --check ]; then # internal: one check, run by xargs below
    shift
    check "$@"
    exit 0
fi
if [ "${1:-}" = --build ]; then # internal: one build, run by xargs below
    shift
    build "$@"
    exit
fi
if [ "${1:-}" = --native-only ]; then
    NATIVE_ONLY=1
    shift
fi
FILTER=${1:-}

if [ "$NATIVE_ONLY" = 0 ] && [ ! -x "$DBO" ]; then
    echo "diff.sh: $DBO does not exist or is not executable (run make all)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

programs=()
for src in "$SRC"/*.c "$SRC"/*.cc; do
    [ -e "$src" ] || continue
    name=$(basename "${src%.*}")
    case " $SKIP " in *" $name "*) continue ;; esac
    [[ $name == *"$FILTER"* ]] || continue
    programs+=("$src")
done
if [ ${#programs[@]} -eq 0 ]; then
    echo "diff.sh: no program matches '$FILTER'" >&2
    exit 2
fi

# Everything of this run lives in its own directory, so that runs can
# overlap (e.g. two developers' make test in one tree).
mkdir -p "$OUT"
RUN_DIR=$(mktemp -d "$OUT/run.XXXXXX")
export RUN_DIR
trap 'rm -rf "$RUN_DIR"' EXIT
mkdir -p "$RUN_DIR/results" "$RUN_DIR/work"
make_stdin >"$RUN_DIR/stdin.txt"

# Build everything first (in parallel); a program that fails to build in
# some flavour counts as one failed check per flavour.
export BUILD DBO JOBS NATIVE_ONLY
build_failed=0
for f in $FLAVOURS; do
    for src in "${programs[@]}"; do printf '%s\n%s\n' "$f" "$src"; done
done | xargs -d '\n' -n 2 -P "$JOBS" "$ROOT/tests/diff.sh" --build || build_failed=1

checks() {
    for src in "${programs[@]}"; do
        name=$(basename "${src%.*}")
        for f in $FLAVOURS; do
            if [ -x "$OUT/$f/$name" ]; then
                printf '%s %s\n' "$f" "$name"
            else
                echo "FAIL $f/$name: did not build" >&2
                echo fail >"$RUN_DIR/results/$f-$name-build"
            fi
        done
        # The arch_prctl fallback for fs/gs switching, in one flavour.
        if [ "$NATIVE_ONLY" = 0 ] && [ -x "$OUT/pie/$name" ]; then
            printf '%s %s %s\n' pie "$name" --no-fsgsbase
        fi
        if [ "$NATIVE_ONLY" = 0 ] && [ -x "$OUT/static/$name" ]; then
            printf '%s %s %s\n' static "$name" --return-stack
            printf '%s %s %s %s\n' static-pie "$name" --inline-targets --fp-xsave
            printf '%s %s %s\n' nopie "$name" --fragment-branches=0
            # traces on everything that runs twice, indirect branches too
            printf '%s %s %s %s\n' nopie "$name" --trace-threshold=2 --trace-indirect
            printf '%s %s %s %s\n' static-pie "$name" --trace-threshold=3 --cache-size=256K
            # a cache so small that it is flushed again and again
            printf '%s %s %s %s\n' pie "$name" --cache-size=128K --return-stack
        fi
    done
}
checks 2>&1 >"$RUN_DIR/checks.txt" | cat
xargs -r -L 1 -P "$JOBS" "$ROOT/tests/diff.sh" --check <"$RUN_DIR/checks.txt"

passed=$(grep -lx pass "$RUN_DIR"/results/* 2>/dev/null | wc -l)
failed=$(grep -lx fail "$RUN_DIR"/results/* 2>/dev/null | wc -l)
[ "$build_failed" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
