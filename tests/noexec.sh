#!/bin/bash
# No guest page is executable while the guest runs under dbo: only dbo's
# translations run. tests/programs/noexec_probe.c reads /proc/self/maps and
# reports whether the pages holding main, libc's printf and the dynamic
# loader's code are executable, and how many executable mappings belong to
# files the guest loaded. Natively all of that is executable (which shows
# the probe can see it); under dbo none of it may be.
#
# usage: tests/noexec.sh     env: DBO, BUILD (as for diff.sh)
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
BUILD=${BUILD:-build}
OUT=$ROOT/$BUILD/tests/noexec
DBO=$(realpath -m "${DBO:-$BUILD/dbo}")
SRC=$ROOT/tests/programs/noexec_probe.c
ENVIRON=(PATH=/usr/bin:/bin HOME=/nonexistent LC_ALL=C)

passed=0
failed=0

pass() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL $*"
}

flavour_flags() {
    case $1 in
    pie) echo "-fPIE -pie" ;;
    nopie) echo "-fno-pie -no-pie" ;;
    static) echo "-static" ;;
    static-pie) echo "-static-pie -fPIE" ;;
    esac
}

# verify LABEL FILE STATUS EXEC DYNAMIC: check one run's report. EXEC is
# "yes" (native: everything executable) or "no" (under dbo: nothing).
verify() {
    local label=$1 file=$2 status=$3 want=$4 dynamic=$5 problems=() n
    [ "$status" = 0 ] || problems+=("probe exited with status $status")
    grep -qx "main: x=$want" "$file" || problems+=("main: wanted x=$want, got '$(grep '^main:' "$file")'")
    grep -qx "printf: x=$want" "$file" || problems+=("printf: wanted x=$want, got '$(grep '^printf:' "$file")'")
    if [ "$dynamic" = yes ]; then
        grep -qx "loader: x=$want" "$file" || problems+=("loader: wanted x=$want, got '$(grep '^loader:' "$file")'")
    else
        grep -qx "loader: none" "$file" || problems+=("loader: wanted none, got '$(grep '^loader:' "$file")'")
    fi
    # the mapping count means nothing if no guest object was found
    n=$(sed -n 's/^guest objects: //p' "$file")
    [ -n "$n" ] && [ "$n" -gt 0 ] || problems+=("probe found no guest objects")
    n=$(sed -n 's/^executable guest file mappings: //p' "$file")
    if [ -z "$n" ]; then
        problems+=("no count of executable guest file mappings")
    elif [ "$want" = yes ] && [ "$n" -eq 0 ]; then
        problems+=("no executable guest file mapping seen natively")
    elif [ "$want" = no ] && [ "$n" -ne 0 ]; then
        problems+=("$n executable guest file mapping(s)")
    fi
    if [ ${#problems[@]} -eq 0 ]; then
        pass
    else
        local summary
        summary=$(printf '%s; ' "${problems[@]}")
        fail "$label: ${summary%; }"
    fi
}

# run_probe OUTFILE CMD...: run with a fixed environment and a timeout,
# print the exit status.
run_probe() {
    local out=$1
    shift
    {
        (
            ulimit -c 0
            exec env -i "${ENVIRON[@]}" timeout -k 5 20 "$@" </dev/null >"$out" 2>"$out.err"
        )
        echo $?
    } 2>/dev/null
}

if [ ! -x "$DBO" ]; then
    echo "noexec.sh: $DBO does not exist or is not executable (run make all)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
# a directory of its own, so that runs can overlap
mkdir -p "$OUT"
RUN_DIR=$(mktemp -d "$OUT/run.XXXXXX")
trap 'rm -rf "$RUN_DIR"' EXIT

for flavour in pie nopie static static-pie; do
    bin=$RUN_DIR/probe-$flavour
    # shellcheck disable=SC2046
    if ! gcc -std=gnu11 -O2 -Wall -Wextra -Werror $(flavour_flags "$flavour") \
        -o "$bin" "$SRC" 2>"$bin.log"; then
        fail "$flavour: probe did not build: $(head -1 "$bin.log")"
        continue
    fi
    case $flavour in
    static*) dynamic=no ;;
    *) dynamic=yes ;;
    esac

    st=$(run_probe "$bin.native" "$bin")
    verify "$flavour native" "$bin.native" "$st" yes "$dynamic"

    st=$(run_probe "$bin.dbo" "$DBO" "$bin")
    verify "$flavour under dbo" "$bin.dbo" "$st" no "$dynamic"

    if [ "$flavour" = pie ]; then
        st=$(run_probe "$bin.dbo-nofsgs" "$DBO" --no-fsgsbase "$bin")
        verify "$flavour under dbo --no-fsgsbase" "$bin.dbo-nofsgs" "$st" no "$dynamic"
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
