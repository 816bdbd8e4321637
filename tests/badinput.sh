#!/bin/bash
# dbo given bad input must fail cleanly: exactly one line on stderr that
# starts with "dbo:", a nonzero exit status that is not a death by signal
# (< 128), and no core file. --help and --version must succeed.
#
# usage: tests/badinput.sh     env: DBO, BUILD (as for diff.sh)
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
BUILD=${BUILD:-build}
OUT=$ROOT/$BUILD/tests/badinput
DBO=$(realpath -m "${DBO:-$BUILD/dbo}")

passed=0
failed=0
fail() {
    failed=$((failed + 1))
    echo "FAIL $*"
}

if [ ! -x "$DBO" ]; then
    echo "badinput.sh: $DBO does not exist or is not executable (run make all)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
# a directory of its own, so that runs can overlap
mkdir -p "$OUT"
RUN_DIR=$(mktemp -d "$OUT/run.XXXXXX")
trap 'rm -rf "$RUN_DIR"' EXIT
mkdir -p "$RUN_DIR/files" "$RUN_DIR/run"
F=$RUN_DIR/files

# --- the bad inputs ------------------------------------------------------

mkdir -p "$F/a-directory"
printf 'just some text\nnot a program\n' >"$F/text"
chmod 755 "$F/text"
: >"$F/empty"
chmod 755 "$F/empty"
cp /bin/true "$F/not-executable"
chmod 644 "$F/not-executable"

# elf_header CLASS MACHINE: the start of an ELF executable with the given
# EI_CLASS (1 = 32-bit, 2 = 64-bit) and e_machine, little-endian.
elf_header() {
    local class=$1 machine=$2
    printf '\177ELF'
    printf "\\$(printf %03o "$class")\\001\\001\\000" # class, LSB, version, SysV
    printf '\000\000\000\000\000\000\000\000'         # padding
    printf '\002\000'                                  # e_type = ET_EXEC
    printf "\\$(printf %03o $((machine & 255)))\\$(printf %03o $((machine >> 8)))"
    printf '\001\000\000\000' # e_version
}

# A 32-bit x86 program: built by gcc -m32 when the multilib is installed,
# otherwise a hand-made ELFCLASS32/EM_386 header with padding.
if ! echo 'int main(void) { return 0; }' | gcc -m32 -x c - -o "$F/elf32" 2>/dev/null; then
    { elf_header 1 3; head -c 200 /dev/zero; } >"$F/elf32"
fi
chmod 755 "$F/elf32"
# A 64-bit ARM program header (EM_AARCH64 = 183).
{ elf_header 2 183; head -c 200 /dev/zero; } >"$F/elf-aarch64"
chmod 755 "$F/elf-aarch64"
# A truncated x86-64 executable: the real header, then nothing.
head -c 64 /bin/true >"$F/truncated-elf"
chmod 755 "$F/truncated-elf"

# check_bad NAME ARGS...: dbo ARGS must fail cleanly.
check_bad() {
    local name=$1
    shift
    local dir=$RUN_DIR/run/$name status problems=() lines
    mkdir -p "$dir"
    {
        (
            cd "$dir" || exit 99
            # allow core dumps so that a crash would leave one behind
            ulimit -c unlimited 2>/dev/null
            exec env -i PATH=/usr/bin:/bin timeout -k 5 10 "$DBO" "$@" \
                </dev/null >"$dir/stdout" 2>"$dir/stderr"
        )
        echo $? >"$dir/status"
    } 2>/dev/null
    status=$(cat "$dir/status")
    lines=$(wc -l <"$dir/stderr")
    if [ "$status" = 0 ]; then
        problems+=("exited 0")
    elif [ "$status" = 124 ]; then
        problems+=("timed out")
    elif [ "$status" -ge 128 ]; then
        problems+=("died (status $status)")
    fi
    if [ "$lines" != 1 ] || [ -n "$(tail -c 1 "$dir/stderr")" ]; then
        problems+=("$lines lines on stderr (want exactly one): '$(head -c 80 "$dir/stderr" | tr '\n' '|')'")
    fi
    grep -q '^dbo:' "$dir/stderr" || problems+=("stderr does not start with 'dbo:': '$(head -1 "$dir/stderr" | cut -c1-80)'")
    if compgen -G "$dir/core*" >/dev/null; then
        problems+=("left a core file")
    fi
    if [ ${#problems[@]} -eq 0 ]; then
        passed=$((passed + 1))
    else
        local summary
        summary=$(printf '%s; ' "${problems[@]}")
        fail "$name (dbo $*): ${summary%; }"
    fi
}

check_bad no-program
check_bad only-options --no-fsgsbase
check_bad missing-file /nonexistent/program
check_bad not-on-path no-such-command-dbo-test
check_bad directory "$F/a-directory"
check_bad text-file "$F/text"
check_bad empty-file "$F/empty"
check_bad elf32 "$F/elf32"
check_bad elf-aarch64 "$F/elf-aarch64"
check_bad truncated-elf "$F/truncated-elf"
check_bad not-executable "$F/not-executable"
check_bad bogus-option --bogus /bin/true
check_bad branches-not-a-number --fragment-branches=many /bin/true
check_bad branches-too-many --fragment-branches=99 /bin/true
check_bad threshold-not-a-number --trace-threshold=often /bin/true
check_bad threshold-negative --trace-threshold=-1 /bin/true

# check_ok NAME PATTERN ARGS...: dbo ARGS exits 0 and prints PATTERN.
check_ok() {
    local name=$1 pattern=$2 out status
    shift 2
    out=$(timeout -k 5 10 "$DBO" "$@" 2>&1 </dev/null)
    status=$?
    if [ "$status" != 0 ]; then
        fail "$name (dbo $*): exit status $status"
    elif ! grep -qiE "$pattern" <<<"$out"; then
        fail "$name (dbo $*): output does not match /$pattern/: '$(head -1 <<<"$out")'"
    else
        passed=$((passed + 1))
    fi
}

check_ok help 'usage' --help
check_ok version '[0-9]+\.[0-9]+' --version

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
