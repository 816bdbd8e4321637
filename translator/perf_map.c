/* --perf-map: names every piece of translated code in /tmp/perf-PID.map,
 * the file `perf report` reads for code it finds in no ELF file (one
 * "START SIZE NAME" line each, in hex). A fragment is cut into runs of
 * the same kind of code, each named "dbo:KIND 0xGUESTPC" (see
 * perf_map_kind_names), so a profile shows how much time goes to the
 * guest's own instructions and how much to what translation added
 * (lookups of returns and indirect branches, calls' pushes, exits), and
 * where in the guest. benchmarks/profile adds the samples up by kind.
 *
 * Written under the translator lock, buffered, flushed before the
 * process exits or executes another program. A fork child starts its
 * own file from a copy of its parent's: it runs the parent's code. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "translator/builder.h"

static const char *const perf_map_kind_names[] = {
    [CODE_GUEST] = "code",      [CODE_ENTRY] = "entry",   [CODE_BRANCH] = "branch",
    [CODE_CALL] = "call",       [CODE_RETURN] = "return", [CODE_INDIRECT] = "indirect",
    [CODE_SYSCALL] = "syscall", [CODE_COLD] = "cold",     [CODE_COUNTER] = "counter",
};

static int map_fd = -1;
static char buf[64 << 10];
static size_t used;

static void open_map(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    map_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); /* read by a fork child */
    if (map_fd < 0)
        dbo_fatal("--perf-map: cannot create %s: %m", path);
}

void translator_flush_perf_map(void)
{
    for (size_t done = 0; done < used;) {
        ssize_t n = write(map_fd, buf + done, used - done);
        if (n <= 0)
            break; /* a profile aid: a full disk costs names, not the run */
        done += (size_t)n;
    }
    used = 0;
}

/* In a fork child: its own file, the parent's lines first (those it
 * wrote, then those still in the buffer: the parent writes them later). */
void translator_perf_map_after_fork(void)
{
    if (map_fd < 0)
        return;
    int parent = map_fd;
    open_map();
    char block[16 << 10];
    ssize_t n;
    for (off_t at = 0; (n = pread(parent, block, sizeof block, at)) > 0; at += n)
        if (write(map_fd, block, (size_t)n) != n)
            break;
    close(parent);
    translator_flush_perf_map();
}

static char *put_hex(char *p, uint64_t v)
{
    char digits[16];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        *p++ = digits[--n];
    return p;
}

static void add_line(uint64_t start, uint64_t size, enum code_kind kind, uint64_t guest_pc)
{
    if (!size)
        return;
    if (map_fd < 0)
        open_map();
    if (sizeof buf - used < 80)
        translator_flush_perf_map();
    /* by hand: snprintf cost more than the translation being named */
    char *p = buf + used;
    p = put_hex(p, start);
    *p++ = ' ';
    p = put_hex(p, size);
    memcpy(p, " dbo:", 5);
    p += 5;
    size_t n = strlen(perf_map_kind_names[kind]);
    memcpy(p, perf_map_kind_names[kind], n);
    p += n;
    memcpy(p, " 0x", 3);
    p = put_hex(p + 3, guest_pc);
    *p++ = '\n';
    used = (size_t)(p - buf);
}

void perf_map_fragment(const struct builder *b, const struct fragment *frag)
{
    uint64_t base = (uint64_t)frag->cache_pc;
    uint64_t entry = frag->is_counter ? base : base - INDIRECT_ENTRY_SIZE;
    if (frag->is_counter || !b->n_insns) {
        add_line(entry, base + frag->cache_size - entry, CODE_COUNTER, frag->guest_pc);
        return;
    }
    add_line(entry, base + b->map[0].cache_off - entry, CODE_ENTRY, frag->guest_pc);
    /* runs of one kind; the last instruction's code runs on to the end
     * (its exit jump, the lookups behind a trace's guards, literals) */
    int run = 0;
    for (int i = 1; i <= b->n_insns; i++) {
        if (i < b->n_insns && b->kinds[i] == b->kinds[run])
            continue;
        uint64_t from = base + b->map[run].cache_off;
        uint64_t to = i < b->n_insns ? base + b->map[i].cache_off : base + frag->cache_size;
        add_line(from, to - from, b->kinds[run],
                 frag->is_trace ? b->insn_pcs[run] : frag->guest_pc + b->map[run].guest_off);
        run = i;
    }
    add_line(base + frag->cold_off, frag->cold_bytes, CODE_COLD, frag->guest_pc);
}

void perf_map_inner_entry(const struct fragment *entry, uint64_t size)
{
    add_line((uint64_t)inner_entry_tail(entry)->indirect_entry, size, CODE_ENTRY, entry->guest_pc);
}
