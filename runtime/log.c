/* Logging, fatal errors and --stats. */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "runtime/runtime.h"
#include "translator/translator.h"

struct dbo_options dbo_opts;
struct dbo_stats dbo_stats;
char dbo_self_path[4096];

/* Formats into a buffer and writes it with one write(2): the guest may have
 * closed or redirected stdio, and dbo's own FILE buffers must never mix
 * with the guest's output. */
static void emit_line(const char *prefix, const char *fmt, va_list ap)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s", prefix);
    n += vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
    if (n > (int)sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
}

void dbo_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit_line("dbo: ", fmt, ap);
    va_end(ap);
    _exit(127);
}

void dbo_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit_line("dbo: ", fmt, ap);
    va_end(ap);
}

uint64_t dbo_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* Programs often close stderr before they exit (gnulib's close_stdout
 * does), so --stats keeps its own copy of it, taken at start-up. */
static int stats_fd = -1;

void dbo_stats_init(void)
{
    if (dbo_opts.stats && !dbo_opts.stats_file)
        stats_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 900);
}

void dbo_print_stats(void)
{
    if (!dbo_opts.stats)
        return;
    int fd = stats_fd >= 0 ? stats_fd : STDERR_FILENO;
    if (dbo_opts.stats_file) {
        fd = open(dbo_opts.stats_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            dbo_log("cannot open stats file %s: %s", dbo_opts.stats_file, strerror(errno));
            return;
        }
    }
    const struct dbo_stats *s = &dbo_stats;
    uint64_t inline_hits;
    uint64_t hits = translator_indirect_hits(&inline_hits);
    uint64_t lookups = inline_hits + hits + s->indirect_misses;
    double ms = s->translate_ns / 1e6;
    uint64_t fast_syscalls = translator_fast_syscalls();
    uint64_t return_misses, return_hits = translator_return_stack_counts(&return_misses);
    struct mallinfo2 heap = mallinfo2(); /* the runtime's own: the guest's is its brk and mmaps */
    dprintf(fd,
            "dbo: stats for pid %d\n"
            "  fragments built        %" PRIu64 " (and %" PRIu64 " entries into their code)\n"
            "  guest instructions     %" PRIu64 " translated\n"
            "  cache bytes            %" PRIu64 " emitted, %zu in use\n"
            "  runtime heap           %zu bytes in use (fragment records, tables)\n"
            "  dispatcher entries     %" PRIu64 "\n"
            "  direct links           %" PRIu64 "\n"
            "  indirect branches      %" PRIu64 " (%" PRIu64
            " hit an inline target or trace guard, %" PRIu64 " the table, %" PRIu64
            " missed: %.1f%% in cache)\n"
            "  jump-table sites       %" PRIu64 " hits at %" PRIu64 " sites (%" PRIu64
            " through a constant table)\n"
            "  inline targets set     %" PRIu64 "\n"
            "  return stack           %" PRIu64 " returns reached their call, %" PRIu64 " did not\n"
            "  traces                 %" PRIu64 " built from %" PRIu64 " heads (%" PRIu64
            " recordings dropped, %" PRIu64 " blocks recorded)\n"
            "  flags liveness         dead at %" PRIu64 " of %" PRIu64 " trace heads\n"
            "  syscalls               %" PRIu64 " (%" PRIu64 " through the gate's fast path)\n"
            "  cpuid                  %" PRIu64 " (%" PRIu64
            " asked of the CPU, the runtime's own included)\n"
            "  cache flushes          %" PRIu64 "\n"
            "  invalidated fragments  %" PRIu64 " (%" PRIu64 " writes to code pages)\n"
            "  translation time       %.3f ms (%.0f fragments/ms)\n",
            getpid(), s->fragments_built, s->inner_entries, s->guest_instructions, s->cache_bytes,
            cache_bytes_used(), heap.uordblks + heap.hblkhd, s->dispatcher_entries, s->direct_links,
            lookups, inline_hits, hits, s->indirect_misses,
            lookups ? 100.0 * (inline_hits + hits) / lookups : 0.0, translator_site_hits(),
            s->table_sites, s->constant_table_sites, s->inline_targets, return_hits, return_misses,
            s->traces_built, s->trace_heads, s->traces_abandoned, s->trace_blocks_recorded,
            s->flags_dead, s->flags_checked, s->syscalls + fast_syscalls, fast_syscalls,
            s->cpuid_asked, s->cpuid_executed, s->flushes, s->invalidations, s->code_write_faults,
            ms, ms > 0 ? s->fragments_built / ms : 0.0);
    if (dbo_opts.stats_file)
        close(fd);
}
