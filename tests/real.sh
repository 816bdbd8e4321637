#!/bin/bash
# Real programs under dbo, compared with native runs: coreutils, text
# tools, archivers, interpreters, a database, a compiler and git; threads
# and worker processes in Python, make -j2, bash traps and job control,
# node and a JVM (javac and java).
#
# Each check is a setup_NAME function (optional, always run natively) and a
# body_NAME function. The body is run twice in the same fresh directory,
# once with RUN empty (native) and once with RUN=dbo; commands prefixed by
# $RUN are the ones translated. stdout, stderr and the exit status of the
# body must be the same, and the native run must give the expected status
# and some output, or the check is broken (and counts as failed).
#
# usage: tests/real.sh [FILTER]      (runs checks whose name contains FILTER)
# env:   DBO (default $BUILD/dbo), BUILD (default build), JOBS (default 2),
#        TIMEOUT (seconds per run, default 60: gcc and git run many
#        processes, all translated; java gets four times as long)
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
BUILD=${BUILD:-build}
OUT=$ROOT/$BUILD/tests/real
DBO=$(realpath -m "${DBO:-$BUILD/dbo}")
JOBS=${JOBS:-2}
TIMEOUT=${TIMEOUT:-60}
# The fixed environment of every run. Git gets fixed identities and dates
# so that commit hashes are reproducible; Perl and Python fixed hash seeds.
ENVIRON=(PATH=/usr/bin:/bin LC_ALL=C TZ=UTC PYTHONHASHSEED=0 PERL_HASH_SEED=0
    GIT_AUTHOR_NAME="A U Thor" GIT_AUTHOR_EMAIL=author@example.com
    GIT_AUTHOR_DATE="2020-01-02T03:04:05Z" GIT_COMMITTER_NAME="C O Mitter"
    GIT_COMMITTER_EMAIL=committer@example.com
    GIT_COMMITTER_DATE="2020-01-02T03:04:05Z" GIT_CONFIG_NOSYSTEM=1
    GIT_CONFIG_GLOBAL=/dev/null GIT_PAGER=cat PAGER=cat)

CHECKS="ls sort sed awk grep tar bash coreutils python perl sqlite xz gzip bzip2 gcc git
    pythreads pymultiproc make bashjobs node java gccpipe"

# Exit status the body must end with natively (default 0).
expected_status() {
    case $1 in
    bash) echo 3 ;; # the script ends with an explicit exit 3
    *) echo 0 ;;
    esac
}

# Seconds a body may take (each side): javac and java start a JVM with a
# dozen threads and a JIT that keeps patching its own code.
check_timeout() {
    case $1 in
    java) echo $((TIMEOUT * 4)) ;;
    *) echo "$TIMEOUT" ;;
    esac
}

# A few kilobytes of text that several checks use.
make_text() {
    local i
    for i in $(seq 1 400); do
        printf '%05d %s %d,%d\n' $((i * 7919 % 10007)) \
            "$(echo alpha beta gamma delta epsilon zeta eta theta | cut -d' ' -f$((i % 8 + 1)))" \
            $((i % 13)) $((i * i % 97))
    done
}

# --- checks ------------------------------------------------------------

setup_ls() {
    mkdir -p d/sub d/empty
    printf 'hello\n' >d/a.txt
    printf '%s\n' $(seq 1 1000) >d/numbers
    head -c 5000 /bin/ls >d/binary
    ln -s a.txt d/link
    chmod 640 d/a.txt
    chmod 755 d/binary
    touch -h -d '2021-03-04 05:06:07' d/* d/sub d/empty d . # . is d/../
}
body_ls() {
    $RUN ls -l d
    $RUN ls -la --time-style=full-iso d/
    $RUN ls -lR --time-style=+%Y%m%d d
    $RUN ls -1 -S -r d
    $RUN ls -d d/*.txt d/nonexistent
    echo "ls of a missing file: $?"
}

setup_sort() {
    make_text >text
    seq 1 200000 | awk '{ print ($1 * 7919) % 100003 }' >big
}
body_sort() {
    $RUN sort text | head -5
    $RUN sort -k2,2 -k1,1nr text | md5sum
    $RUN sort -t, -k2n -u text | tail -3
    # -S forces an external merge through temporary files
    $RUN sort -n -S 64K big | md5sum
    $RUN sort -c text
    echo "sort -c on unsorted input: $?"
}

setup_sed() { make_text >text; }
body_sed() {
    $RUN sed -E 's/^([0-9]+) ([a-z]+)/\2=\1/; /theta/d; 5,10y/abc/xyz/' text | md5sum
    $RUN sed -n '/^0001/,/^0003/p; $=' text
    $RUN sed -e '1~50!d' -e 's/ /_/g' text
    cp text edited
    $RUN sed -i.bak 's/gamma/GAMMA/2; s/[0-9]*$/<&>/' edited
    diff text edited | head -4
    cmp -s text edited.bak && echo "backup identical"
}

setup_awk() { make_text >text; }
body_awk() {
    $RUN awk '{ n[$2]++; s[$2] += $1 } END { for (k in n) printf "%s %d %.2f\n", k, n[k], s[k] / n[k] | "sort" }' text
    $RUN awk -F'[ ,]' 'NR % 50 == 0 { print NR, $1 * 1.5, length($2), toupper(substr($2, 1, 3)) }' text
    $RUN awk 'BEGIN { srand(42); for (i = 0; i < 5; i++) x += int(rand() * 1000); printf "%.6f %.6f %d %s\n", sin(1), exp(2.5), x, sprintf("%05.1f|%-6s|%x", 3.14159, "ab", 255) }'
    $RUN awk 'BEGIN { while ((getline line < "text") > 0) c++; print "lines via getline:", c; exit 2 } END { print "end ran" }'
    echo "awk exit: $?"
}

setup_grep() {
    mkdir -p tree/a/b tree/c
    make_text >tree/a/text.txt
    printf 'call 555-1234 or 555-9876\nno number here\n' >tree/a/b/phones.txt
    printf 'alpha\nALPHA\nAlpha\n' >tree/c/case.txt
    printf 'binary\0alpha\n' >tree/c/bin.dat
    printf 'nothing\n' >tree/c/none.log
}
body_grep() {
    $RUN grep -rn alpha tree | sort | md5sum
    $RUN grep -rc --include='*.txt' -i alpha tree | sort
    $RUN grep -rl ALPHA tree | sort
    $RUN grep -P -o '\d{3}-\d{4}' tree/a/b/phones.txt # PCRE2, with its JIT
    $RUN grep -E -w 'beta|zeta' tree/a/text.txt | tail -2
    $RUN grep -v -x -F 'alpha' tree/c/case.txt
    $RUN grep -q nomatch tree/c/none.log
    echo "grep without a match: $?"
}

setup_tar() {
    mkdir -p src/dir/deeper
    make_text >src/dir/text
    head -c 100000 /bin/bash >src/dir/deeper/blob
    printf 'x\n' >src/top
    touch -d '2020-05-06 07:08:09' src/dir/text src/dir/deeper/blob src/top src/dir/deeper src/dir src
}
body_tar() {
    local opts=(--sort=name --owner=0 --group=0 --numeric-owner --format=gnu)
    $RUN tar -cf - "${opts[@]}" src | sha256sum
    $RUN tar -cf - "${opts[@]}" src | $RUN tar -tvf -
    $RUN tar -czf a.tgz "${opts[@]}" src
    mkdir x && $RUN tar -xzf a.tgz -C x && diff -r src x/src && echo "extracted tree identical"
    tar -cf b.tar "${opts[@]}" src # native tar, translated reader
    $RUN tar -xOf b.tar src/dir/text | md5sum
}

body_bash() {
    $RUN bash -c '
        set -o pipefail
        sq() { echo $(($1 * $1)); }
        total=0
        for i in $(seq 1 20); do total=$((total + $(sq $i))); done
        echo "sum of squares: $total"
        echo "pipeline: $(seq 1 100 | grep 7 | tr "\n" " " | wc -w)"
        (cd / && echo "subshell in $PWD"; exit 4); echo "subshell status $?"
        echo "still in ${PWD##*/}"
        declare -A colour=([apple]=red [banana]=yellow)
        for k in $(printf "%s\n" "${!colour[@]}" | sort); do echo "$k is ${colour[$k]}"; done
        arr=(one "two three" four); echo "${#arr[@]} items, second: ${arr[1]}"
        while read -r n w rest; do [ "$n" -gt 2 ] && break; echo "read: $n $w"; done <<EOF
1 first line
2 second line
3 third line
EOF
        { echo to-stderr >&2; echo to-stdout; } 2>&1 | sort
        false | true; echo "pipefail status: $?"
        sleep 0.1 & bgpid=$!; wait $bgpid; echo "background job status $?"
        trap "echo trap on exit" EXIT
        s="Hello, World"; echo "${s^^} ${s,,} ${s/World/There} ${#s} ${s:7:3}"
        printf "%5.2f|%-4s|%04x\n" 3.14159 ab 255
        case "$s" in Hello*) echo "case matched";; esac
        exit 3
    '
}

setup_coreutils() { make_text >text; }
body_coreutils() {
    $RUN cut -d' ' -f2 text | $RUN sort | $RUN uniq -c
    $RUN tr 'a-z' 'A-Z' <text | $RUN head -3
    $RUN wc text
    $RUN sha256sum text
    $RUN md5sum text
    $RUN od -A d -t x1 -N 32 /bin/true | head -2
    $RUN date -d @1234567890 '+%Y-%m-%d %H:%M:%S %Z %s'
    $RUN seq -w 1 3 20 | $RUN paste -sd+ | $RUN bc
    $RUN expr 7 \* 6
    $RUN find . -name 'te*' -printf '%p %s\n'
    $RUN stat -c '%s %F' text
    $RUN basename /a/b/c.txt .txt
    $RUN printf '%s-%d\n' x 1 y 2
}

setup_python() {
    cat >prog.py <<'EOF'
import collections, fractions, functools, hashlib, itertools, json, math, re, sys


class Account:
    def __init__(self, owner, balance=0):
        self.owner, self.balance, self.history = owner, balance, []

    def deposit(self, amount):
        self.balance += amount
        self.history.append(("in", amount))

    def withdraw(self, amount):
        if amount > self.balance:
            raise ValueError(f"{self.owner}: insufficient funds for {amount}")
        self.balance -= amount
        self.history.append(("out", amount))


class Bank:
    def __init__(self, names):
        self.accounts = {n: Account(n, 100) for n in names}
        self.failures = 0

    def transfer(self, a, b, amount):
        try:
            self.accounts[a].withdraw(amount)
            self.accounts[b].deposit(amount)
        except ValueError:
            self.failures += 1


seed = 12345
def rnd(n):
    global seed
    seed = (seed * 1103515245 + 12345) % 2**31
    return seed % n

names = ["ann", "bob", "cid", "dee", "eve"]
bank = Bank(names)
for _ in range(20000):
    bank.transfer(names[rnd(5)], names[rnd(5)], rnd(60))
state = {n: {"balance": a.balance, "ops": len(a.history)} for n, a in bank.accounts.items()}
state["failures"] = bank.failures
text = json.dumps(state, sort_keys=True, indent=1)
print(json.dumps(state, sort_keys=True))
print("json sha256", hashlib.sha256(text.encode()).hexdigest())
assert json.loads(text) == state
print("total money", sum(a.balance for a in bank.accounts.values()))

log = "mail ann@example.com, bob@test.org; 10 items at 3.50 and 7 at 12.25 on 2021-03-04"
print(re.findall(r"\b(\w+)@(\w+)\.(\w+)\b", log))
print(re.sub(r"(\d+)\.(\d+)", lambda m: m.group(2) + "." + m.group(1), log))
print(re.match(r"(?P<y>\d{4})-(?P<m>\d\d)", "2021-03-04").groupdict())

for alg in ("md5", "sha1", "sha256", "sha512", "sha3_256", "blake2b"):
    print(alg, hashlib.new(alg, b"dbo" * 10000).hexdigest()[:32])

words = re.findall(r"[a-z]+", open("prog.py").read())
print(collections.Counter(words).most_common(5))
print(functools.reduce(lambda a, b: a * b % 1000000007, range(1, 5000), 1))
print(fractions.Fraction(1, 3) + fractions.Fraction(5, 7), math.factorial(40), pow(3, 1000, 10**30))
print(list(itertools.islice(itertools.permutations("abcd"), 3)), math.isqrt(10**40 + 12345))
print(sorted({x * x % 17 for x in range(100)}), f"{math.pi:.12f} {2.5e-7:g} {1e22:.3e}")
sys.stderr.write("python done\n")
EOF
}
body_python() {
    $RUN /usr/bin/python3 -I -B prog.py
    $RUN /usr/bin/python3 -I -B -c 'import sys; print(sys.version_info[:2] >= (3, 6)); sys.exit(5)'
    echo "python exit: $?"
    $RUN /usr/bin/python3 -I -B -c 'raise KeyError("boom")' 2>&1 | tail -1
}

setup_perl() {
    make_text >text
    cat >prog.pl <<'EOF'
use strict;
use warnings;
my %seen;
my @rows;
open my $fh, '<', 'text' or die "text: $!";
while (my $line = <$fh>) {
    chomp $line;
    my ($num, $word, $pair) = split / /, $line;
    $seen{$word}++;
    push @rows, { num => $num, word => $word, pair => [split /,/, $pair] };
}
close $fh;
printf "%-8s %3d\n", $_, $seen{$_} for sort keys %seen;
my @top = (sort { $b->{num} <=> $a->{num} or $a->{word} cmp $b->{word} } @rows)[0 .. 2];
print join(" ", map { "$_->{num}:$_->{word}:@{$_->{pair}}" } @top), "\n";
my $make_counter = sub { my $n = shift; return sub { return $n++ } };
my $c = $make_counter->(10);
$c->() for 1 .. 5;
print "closure: ", $c->(), "\n";
my $s = "The year 1999 and 2024, not 12345";
my @years = $s =~ /\b(\d{4})\b/g;
(my $t = $s) =~ s/(\d+)/<$1>/g;
print "years @years; $t\n";
local $, = "-";
print sprintf("%.3f", atan2(1, 1) * 4), sprintf("%e", 1234.5), sprintf("%x", 48879);
print "\n";
warn "perl warning to stderr\n";
EOF
}
body_perl() {
    $RUN perl -e 'print join(",", map { $_ * $_ } 1 .. 10), "\n"'
    $RUN perl -ne 'print if /theta/ && $. < 60' text
    $RUN perl -lane '$s += $F[0]; END { print "sum $s" }' text
    $RUN perl -pe 's/(\d+)/$1*2/e' text | tail -2
    $RUN perl -MList::Util=sum,max -le 'print sum(1..100), " ", max(3, 9, 2)'
    $RUN perl prog.pl
}

setup_sqlite() {
    cat >q.sql <<'EOF'
CREATE TABLE emp(id INTEGER PRIMARY KEY, name TEXT, dept TEXT, salary INT, boss INT);
INSERT INTO emp VALUES (1, 'ada', 'eng', 300, NULL), (2, 'bob', 'eng', 200, 1),
  (3, 'cy', 'ops', 150, 1), (4, 'di', 'eng', 180, 2), (5, 'ed', 'ops', 120, 3),
  (6, 'flo', 'sales', 170, 1), (7, 'gus', 'sales', 90, 6), (8, 'hal', 'eng', 210, 2);
CREATE INDEX emp_dept ON emp(dept);
WITH RECURSIVE chain(id, name, depth, path) AS (
  SELECT id, name, 0, name FROM emp WHERE boss IS NULL
  UNION ALL
  SELECT e.id, e.name, c.depth + 1, c.path || '/' || e.name FROM emp e JOIN chain c ON e.boss = c.id)
SELECT depth, path FROM chain ORDER BY path;
WITH RECURSIVE fib(n, a, b) AS (SELECT 1, 0, 1 UNION ALL SELECT n + 1, b, a + b FROM fib WHERE n < 90)
SELECT n, a FROM fib WHERE n % 15 = 0;
WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 200000)
SELECT count(*), sum(x), avg(x), sum(x * x % 7) FROM cnt;
SELECT dept, count(*), sum(salary), rank() OVER (ORDER BY sum(salary) DESC) FROM emp GROUP BY dept;
UPDATE emp SET salary = salary * 11 / 10 WHERE dept = 'ops';
DELETE FROM emp WHERE id = 7;
SELECT e.name, b.name, e.salary FROM emp e LEFT JOIN emp b ON e.boss = b.id ORDER BY e.salary DESC;
SELECT printf('%.3f', avg(salary)), group_concat(name, ',') FROM emp WHERE dept = 'eng';
CREATE TABLE big AS WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 20000)
  SELECT i, hex(i % 256) || (i * 7919 % 1000) AS k FROM r;
SELECT count(DISTINCT k), max(k), min(k) FROM big;
SELECT * FROM nosuchtable;
EOF
}
body_sqlite() {
    $RUN sqlite3 db.sqlite <q.sql
    echo "sqlite status: $?"
    $RUN sqlite3 db.sqlite 'PRAGMA integrity_check; SELECT count(*) FROM emp;'
    $RUN sqlite3 -header -column :memory: "SELECT 1 AS one, 'two' AS two, 3.5 AS three;"
}

# Compression round trips: compress under dbo and decompress natively,
# and the other way round; both directions must restore the exact bytes,
# and dbo's compressed stream must equal the native one.
setup_compress() {
    seq 1 100000 | sed 's/$/ lorem ipsum dolor/' >data
    head -c 300000 /bin/bash >>data
}
roundtrip() { # TOOL [OPTIONS...]
    local tool=$1
    shift
    $RUN "$tool" "$@" -c data >by-run.z
    "$tool" "$@" -c data >by-native.z
    "$tool" -d -c by-run.z | cmp - data && echo "$tool: translated compress, native decompress: ok"
    $RUN "$tool" -d -c by-native.z | cmp - data && echo "$tool: native compress, translated decompress: ok"
    cmp by-run.z by-native.z && echo "$tool: compressed bytes identical"
    $RUN "$tool" -t by-native.z && echo "$tool: test ok"
    echo garbage >bad.z
    $RUN "$tool" -d -c bad.z >/dev/null 2>err
    echo "$tool on garbage: status $?, $(wc -l <err) line(s) of error"
}
setup_xz() { setup_compress; }
body_xz() { roundtrip xz -T1 -6; }
setup_gzip() { setup_compress; }
body_gzip() { roundtrip gzip -9 -n; }
setup_bzip2() { setup_compress; }
body_bzip2() { roundtrip bzip2 -9; }

setup_gcc() {
    cat >x.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

int main(void)
{
    int v[1000], unused;
    for (int i = 0; i < 1000; i++)
        v[i] = (i * 7919) % 1009;
    qsort(v, 1000, sizeof v[0], cmp);
    long s = 0;
    for (int i = 0; i < 1000; i += 100)
        s += v[i];
    printf("compiled program says %ld %d %d\n", s, v[0], v[999]);
    return 3;
}
EOF
}
body_gcc() {
    # the whole compile-and-run under dbo, through bash; -Wall warns about
    # 'unused' on stderr, which must match too
    $RUN bash -c 'gcc -O2 -Wall x.c -o x && ./x; echo "x exited $?"'
    sha256sum x # the compiler under dbo must produce the native binary
    $RUN gcc -O0 -g -c x.c -o x.o && $RUN gcc x.o -o y && ./y
    echo "y exited $?"
    $RUN gcc -fsyntax-only -x c - <<<'int main(void) { return undefined_thing; }'
    echo "bad program: $?"
}

body_git() {
    $RUN git init -q -b main repo && cd repo || return 1
    printf 'line %d\n' $(seq 1 50) >file.txt
    mkdir sub && echo "nested" >sub/n.txt
    $RUN git add . && $RUN git commit -q -m "first commit"
    sed -i 's/^line 2\(.\)$/LINE 2\1 changed/' file.txt
    echo "new" >new.txt
    $RUN git status --short
    $RUN git add -A && $RUN git commit -q -m "second commit" -m "with a body"
    $RUN git log --stat --format='%H %an <%ae> %ad%n%s%n%b'
    $RUN git diff HEAD~1 --stat
    $RUN git diff HEAD~1 -- file.txt | head -20
    $RUN git branch side HEAD~1 && $RUN git checkout -q side
    echo "side" >side.txt && $RUN git add side.txt && $RUN git commit -q -m side
    $RUN git checkout -q main && $RUN git merge -q --no-edit side
    $RUN git log --graph --oneline --all
    $RUN git repack -a -d -q && $RUN git fsck --no-progress --strict && echo "fsck ok"
    $RUN git cat-file -p 'HEAD^{tree}'
    $RUN git show --no-patch nosuchref
    echo "git show of a bad ref: $?"
}

# --- threads, processes, job control and managed runtimes --------------

setup_pythreads() {
    cat >threads.py <<'EOF'
import concurrent.futures, hashlib, queue, threading

def work(n):
    h = hashlib.sha256()
    for i in range(2000):
        h.update(f"{n}:{i}".encode())
    primes = sum(1 for k in range(2, 3000 + n) if all(k % d for d in range(2, int(k ** 0.5) + 1)))
    return n, h.hexdigest()[:16], primes

with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
    for n, digest, primes in ex.map(work, range(16)):
        print(n, digest, primes)
    futures = [ex.submit(pow, 3, 10000 + i, 1000003) for i in range(50)]
    print("submitted:", sum(f.result() for f in futures))
    failing = ex.submit(lambda: 1 // 0)
    print("exception in a worker:", type(failing.exception()).__name__)

counter, lock = 0, threading.Lock()
def bump():
    global counter
    for _ in range(20000):
        with lock:
            counter += 1
threads = [threading.Thread(target=bump) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("locked counter:", counter)

q, results = queue.Queue(), []
def producer():
    for i in range(500):
        q.put(i * i)
    q.put(None)
def consumer():
    while (item := q.get()) is not None:
        results.append(item % 97)
p, c = threading.Thread(target=producer), threading.Thread(target=consumer)
c.start(); p.start(); p.join(); c.join()
print("queue:", len(results), sum(results))

barrier, ev, order = threading.Barrier(4), threading.Event(), []
def waiter(i):
    barrier.wait()
    ev.wait()
    with lock:
        order.append(i)
ws = [threading.Thread(target=waiter, args=(i,)) for i in range(4)]
for w in ws:
    w.start()
ev.set()
for w in ws:
    w.join()
print("event released", sorted(order), "alive after join:", threading.active_count())
EOF
}
body_pythreads() {
    $RUN /usr/bin/python3 -I -B threads.py
}

setup_pymultiproc() {
    cat >mp.py <<'EOF'
import multiprocessing as mp, os, sys

def square_sum(n):
    return n, sum(i * i for i in range(n * 1000))

def report(q, tag):
    q.put((tag, os.getpid() != os.getppid(), sum(range(tag * 10000))))

if __name__ == "__main__":
    print("start method:", mp.get_start_method())
    with mp.Pool(2) as pool:
        for n, s in pool.map(square_sum, range(1, 13)):
            print(n, s)
        print("imap_unordered:", sorted(pool.imap_unordered(abs, range(-20, 0), chunksize=3)))
        r = pool.apply_async(divmod, (1000, 7))
        print("apply_async:", r.get(timeout=60))
        bad = pool.apply_async(int, ("not a number",))
        try:
            bad.get(timeout=60)
        except ValueError as e:
            print("error from a worker:", e)
    q = mp.Queue()
    procs = [mp.Process(target=report, args=(q, i)) for i in range(1, 4)]
    for p in procs:
        p.start()
    got = sorted(q.get(timeout=60) for _ in procs)
    for p in procs:
        p.join()
    print("processes:", got, [p.exitcode for p in procs])
    p = mp.Process(target=sys.exit, args=(3,))
    p.start(); p.join()
    print("child exit code:", p.exitcode)
EOF
}
body_pymultiproc() {
    $RUN /usr/bin/python3 -I -B mp.py
}

# A small generated C project built with make -j2 (silent: the order in
# which parallel commands echo is not deterministic).
setup_make() {
    mkdir -p proj
    local i
    for i in 1 2 3 4 5; do
        cat >proj/mod$i.c <<EOF
#include "mods.h"
long mod$i(long x)
{
    long s = 0;
    for (long k = 1; k <= x; k++)
        s += (k * $i) % (7 + $i);
    return s;
}
EOF
    done
    cat >proj/mods.h <<'EOF'
long mod1(long), mod2(long), mod3(long), mod4(long), mod5(long);
EOF
    cat >proj/main.c <<'EOF'
#include <stdio.h>
#include "mods.h"
int main(void)
{
    long (*f[])(long) = {mod1, mod2, mod3, mod4, mod5};
    for (int i = 0; i < 5; i++)
        printf("mod%d(100000) = %ld\n", i + 1, f[i](100000));
    return 0;
}
EOF
    cat >proj/Makefile <<'EOF'
CFLAGS = -O2 -Wall
OBJS = main.o mod1.o mod2.o mod3.o mod4.o mod5.o
prog: $(OBJS)
	$(CC) -o $@ $(OBJS)
%.o: %.c mods.h
	$(CC) $(CFLAGS) -c $<
clean:
	rm -f prog $(OBJS)
.PHONY: clean
EOF
}
body_make() {
    cd proj || return 1
    $RUN make -s -j2
    echo "make: $?"
    $RUN ./prog
    sha256sum prog ./*.o # the translated compilers made the native bytes
    $RUN make -s -j2
    echo "make again: $?"
    touch mod3.c
    $RUN make -j2
    $RUN make -s clean && ls
    $RUN make -s -j2 nosuchtarget
    echo "bad target: $?"
}

body_bashjobs() {
    $RUN bash -c '
        trap "echo EXIT trap ran" EXIT
        trap "echo got USR1" USR1
        trap "echo got INT" INT
        kill -USR1 $$
        kill -INT $$
        echo "after the signals"
        set -m
        # The job is started without the EXIT trap: a SIGTERM that reaches
        # the forked bash before it has become sleep would run the trap.
        trap - EXIT
        sleep 30 &
        first=$!
        trap "echo EXIT trap ran" EXIT
        (sleep 0.2; exit 5) &
        second=$!
        jobs >jobs.txt # (not in a pipeline: bash runs "jobs |" in a subshell)
        sed "s/  */ /g" jobs.txt
        kill %1
        wait $first
        echo "killed job: $?"
        wait $second
        echo "second job: $?"
        set +m # (no notices: these finish in any order)
        for i in 1 2 3; do (exit $i) & done
        wait
        echo "waited for all: $?"
        set -m
        (trap "echo subshell got TERM; exit 7" TERM; : >ready; sleep 5 & wait) &
        sub=$!
        while [ ! -e ready ]; do sleep 0.01; done
        kill -TERM $sub
        wait $sub
        echo "subshell: $?"
        read -r -t 0.1 line < <(sleep 1)
        echo "read timeout: $?"
        set +m
        trap - USR1
        trap "echo ERR trap: \$BASH_COMMAND" ERR
        false
        echo done
    ' 2>&1
    echo "bash exit: $?"
}

body_node() {
    $RUN /usr/bin/node -e '
        const primes = [];
        for (let n = 2; primes.length < 2000; n++)
            if (primes.every(p => p * p > n || n % p)) primes.push(n);
        console.log("primes", primes.length, primes[primes.length - 1],
                    primes.reduce((a, b) => a + b, 0));
        const data = Array.from({length: 3000}, (_, i) =>
            ({id: i, name: "item" + (i * 7919 % 3000), tags: [i % 3, i % 5], v: Math.sin(i)}));
        const text = JSON.stringify(data);
        const back = JSON.parse(text);
        back.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
        console.log("json", text.length, back[0].name, back[2999].id,
                    back.reduce((s, o) => s + o.v, 0).toFixed(12));
        const m = new Map();
        for (const w of "the quick brown fox jumps over the lazy dog the end".split(" "))
            m.set(w, (m.get(w) || 0) + 1);
        console.log("map", JSON.stringify([...m].sort()));
        let f = 1n;
        for (let i = 1n; i <= 60n; i++) f *= i;
        console.log("bigint", f.toString(), (2n ** 127n - 1n) % 1000000007n);
        console.log("regex", "a1b22c333".replace(/\d+/g, d => `<${d.length}>`));
        Promise.all([1, 2, 3].map(async x => x * 2)).then(r => {
            console.log("promises", r);
            setTimeout(() => { console.error("timer fired"); process.exitCode = 4; }, 10);
        });
    '
    echo "node exit: $?"
    $RUN /usr/bin/node -e 'JSON.parse("{bad json")' 2>&1 | grep -o "SyntaxError[^(]*" | head -1
}

setup_java() {
    cat >Main.java <<'EOF'
import java.util.*;
import java.util.concurrent.*;
import java.util.stream.*;

public class Main {
    interface Shape { double area(); }
    record Circle(double r) implements Shape { public double area() { return Math.PI * r * r; } }
    record Rect(double w, double h) implements Shape { public double area() { return w * h; } }

    public static void main(String[] args) throws Exception {
        List<Shape> shapes = new ArrayList<>();
        for (int i = 1; i <= 1000; i++)
            shapes.add(i % 2 == 0 ? new Circle(i / 100.0) : new Rect(i / 10.0, 3));
        System.out.printf("areas %.6f%n", shapes.stream().mapToDouble(Shape::area).sum());
        Map<Boolean, Long> byKind = shapes.stream()
            .collect(Collectors.partitioningBy(s -> s instanceof Circle, Collectors.counting()));
        System.out.println("kinds " + byKind);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 200000; i++) sb.append((char) ('a' + i * 7 % 26));
        System.out.println("hash " + sb.toString().hashCode());
        ExecutorService pool = Executors.newFixedThreadPool(4);
        List<Future<Long>> fs = new ArrayList<>();
        for (int t = 0; t < 8; t++) {
            final int id = t;
            fs.add(pool.submit(() -> LongStream.rangeClosed(1, 2_000_000).map(x -> x * id % 1009).sum()));
        }
        long total = 0;
        for (Future<Long> f : fs) total += f.get();
        pool.shutdown();
        System.out.println("threads " + total);
        try {
            Object o = args.length > 100 ? new Object() : null;
            System.out.println(o.hashCode());
        } catch (NullPointerException e) {
            System.out.println("caught NPE");
        }
        try {
            int[] a = new int[3];
            a[args.length + 5] = 1;
        } catch (ArrayIndexOutOfBoundsException e) {
            System.out.println("caught " + e.getMessage());
        }
        System.err.println("to stderr");
        System.exit(6);
    }
}
EOF
}
body_java() {
    local jopt=(-XX:-UsePerfData)
    $RUN javac -J-XX:-UsePerfData -d classes Main.java
    echo "javac: $?"
    $RUN java "${jopt[@]}" -cp classes Main
    echo "java: $?"
    $RUN java "${jopt[@]}" -cp classes NoSuchClass 2>&1 | head -2
}

setup_gccpipe() {
    cat >p.c <<'EOF'
#include <stdio.h>
#include <string.h>

static unsigned crc32(const unsigned char *p, size_t n)
{
    unsigned c = 0xffffffffu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = c >> 1 ^ (0xedb88320u & -(c & 1));
    }
    return ~c;
}

int main(void)
{
    static unsigned char buf[1 << 20];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 2654435761u >> 13);
    double x = 0;
    for (int i = 1; i < 1000000; i++)
        x += 1.0 / ((double)i * i);
    printf("crc %08x, zeta(2) ~ %.12f, %s\n", crc32(buf, sizeof buf), x,
           strstr("needle in a haystack", "hay"));
    return 0;
}
EOF
}
body_gccpipe() {
    $RUN gcc -pipe -O2 -Wall -o p p.c
    echo "gcc -pipe: $?"
    $RUN ./p
    ./p
    sha256sum p
    $RUN gcc -pipe -O2 -S -o - p.c | grep -c 'call'
}

# --- harness -----------------------------------------------------------

# run_side CHECK MODE: set up a fresh directory and run the body with
# RUN set for MODE, in the fixed environment, saving outputs.
run_side() {
    local name=$1 mode=$2 dir=$RUN_DIR/$1 run=
    [ "$mode" = dbo ] && run=$DBO
    rm -rf "$dir/work"
    mkdir -p "$dir/work"
    (
        cd "$dir/work" || exit 1
        if declare -F "setup_$name" >/dev/null; then
            "setup_$name" >"$dir/setup.log" 2>&1 || echo "setup failed" >>"$dir/setup.log"
        fi
    )
    {
        (
            cd "$dir/work" || exit 1
            ulimit -c 0
            exec env -i "${ENVIRON[@]}" HOME="$dir/work" RUN="$run" \
                timeout -k 5 "$(check_timeout "$name")" bash "$ROOT/tests/real.sh" --body "$name" "$dir/work" \
                </dev/null >"$dir/$mode.out" 2>"$dir/$mode.err"
        )
        echo $? >"$dir/$mode.status"
    } 2>/dev/null
}

describe_status() {
    local s=$1
    if [ "$s" = 124 ]; then
        echo "timeout"
    elif [ "$s" -gt 128 ]; then
        echo "signal $((s - 128))"
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

check() {
    local name=$1 dir=$RUN_DIR/$1 problems=() ns ds expect
    rm -rf "$dir"
    mkdir -p "$dir"
    expect=$(expected_status "$name")
    run_side "$name" native
    ns=$(cat "$dir/native.status")
    [ "$ns" = "$expect" ] ||
        problems+=("BROKEN: native run gave $(describe_status "$ns"), expected $(describe_status "$expect")")
    [ -s "$dir/native.out" ] || problems+=("BROKEN: native run printed nothing")
    run_side "$name" dbo
    ds=$(cat "$dir/dbo.status")
    [ "$ns" = "$ds" ] || problems+=("status native $(describe_status "$ns"), dbo $(describe_status "$ds")")
    cmp -s "$dir/native.out" "$dir/dbo.out" ||
        problems+=("stdout $(first_diff "$dir/native.out" "$dir/dbo.out")")
    cmp -s "$dir/native.err" "$dir/dbo.err" ||
        problems+=("stderr $(first_diff "$dir/native.err" "$dir/dbo.err")")
    if [ ${#problems[@]} -eq 0 ]; then
        rm -rf "$dir" "$OUT/failed/$name" # (outputs of an earlier failure)
        echo pass >"$RUN_DIR/results/$name"
    else
        # keep the outputs where they can be found after this run
        local keep=$OUT/failed/$name summary
        rm -rf "$keep" && mkdir -p "$OUT/failed" && mv "$dir" "$keep"
        summary=$(printf '%s; ' "${problems[@]}")
        echo "FAIL $name: ${summary%; } [outputs in ${keep#"$ROOT"/}]"
        echo fail >"$RUN_DIR/results/$name"
    fi
}

case ${1:-} in
--body) # internal: the body of one check (env already set); NAME DIR
    cd "$3" || exit 1
    "body_$2"
    exit
    ;;
--check) # internal: one check, run by xargs below
    check "$2"
    exit 0
    ;;
esac

FILTER=${1:-}
if [ ! -x "$DBO" ]; then
    echo "real.sh: $DBO does not exist or is not executable (run make all)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
# Everything of this run lives in its own directory, so runs can overlap.
mkdir -p "$OUT"
RUN_DIR=$(mktemp -d "$OUT/run.XXXXXX")
trap 'rm -rf "$RUN_DIR"' EXIT
mkdir -p "$RUN_DIR/results"
export RUN_DIR BUILD DBO TIMEOUT
selected=()
for c in $CHECKS; do [[ $c == *"$FILTER"* ]] && selected+=("$c"); done
if [ ${#selected[@]} -eq 0 ]; then
    echo "real.sh: no check matches '$FILTER'" >&2
    exit 2
fi
printf '%s\n' "${selected[@]}" | xargs -n 1 -P "$JOBS" "$ROOT/tests/real.sh" --check

passed=$(grep -lx pass "$RUN_DIR"/results/* 2>/dev/null | wc -l)
failed=$(grep -lx fail "$RUN_DIR"/results/* 2>/dev/null | wc -l)
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
