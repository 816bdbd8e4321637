/* Process-wide runtime state: options, logging, statistics.
 * Every pipeline stage may include this header. */
#ifndef DBO_RUNTIME_H
#define DBO_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

struct dbo_options {
    bool stats;               /* --stats: print counters at exit */
    const char *stats_file;   /* --stats=FILE, NULL for stderr */
    bool no_fsgsbase;         /* --no-fsgsbase: switch fs/gs with arch_prctl */
    bool verbose;             /* --verbose: log translation events */
    bool perf_map;            /* --perf-map: name translated code in /tmp/perf-PID.map */
    bool return_stack;        /* calls and returns on a return stack of the runtime's */
    bool return_prefetch;     /* a call prefetches its return's table slot */
    bool inline_targets;      /* --inline-targets: per-site predicted target */
    bool table_jumps;         /* jumps through a table look up in a table of their own */
    bool inner_entries;       /* code inside a fragment is entered there, not copied */
    bool fp_xsave;            /* --fp-xsave: vector state by xsaveopt/xrstor, not by hand */
    int fragment_branches;    /* --fragment-branches=N: continue past N branches */
    uint64_t cache_size;      /* --cache-size=SIZE: bytes of translated code, 0 = no bound */
    uint32_t trace_threshold; /* --trace-threshold=N: runs of a head before its trace, 0 = none */
    bool trace_indirect;      /* traces follow indirect jumps and calls behind a guard */
    bool flags_liveness;      /* counters and guards use cmp/add where flags are dead */
    const char *argv0;        /* --argv0: argv[0] given to the guest */
    int option_argc;          /* options as given, handed on to execve'd children */
    char **option_argv;
};

extern struct dbo_options dbo_opts;

/* Absolute path of the dbo executable, for re-executing it on guest execve. */
extern char dbo_self_path[4096];

struct dbo_stats {
    uint64_t fragments_built;
    uint64_t inner_entries; /* entries into fragments built before (cache.h) */
    uint64_t guest_instructions;
    uint64_t cache_bytes;
    uint64_t dispatcher_entries;
    uint64_t direct_links;
    uint64_t indirect_lookups; /* in-cache hits are counted only with --stats */
    uint64_t indirect_misses;
    uint64_t inline_targets;       /* indirect branch sites given a predicted target */
    uint64_t table_sites;          /* jump-table sites made (table_jump.c) */
    uint64_t constant_table_sites; /* of which through a constant table */
    uint64_t syscalls;
    uint64_t cpuid_asked;    /* guest cpuid instructions (cpuid.c) */
    uint64_t cpuid_executed; /* of which asked of the CPU */
    uint64_t flushes;
    uint64_t invalidations;     /* fragments invalidated by unmap, protect or writes */
    uint64_t code_write_faults; /* writes to write-protected code pages */
    uint64_t translate_ns;
    uint64_t trace_heads;           /* fragments given a counter */
    uint64_t trace_blocks_recorded; /* blocks run once to record a path */
    uint64_t flags_checked;         /* trace heads whose flags liveness was asked */
    uint64_t flags_dead;            /* of which found dead: they use add/cmp */
    uint64_t traces_built;
    uint64_t traces_abandoned; /* recordings that did not become a trace */
};

extern struct dbo_stats dbo_stats;

/* One line on stderr ("dbo: ...") and exit status 127 (the shell's "cannot
 * run" status, so a failing dbo is not mistaken for the guest's own exit). */
_Noreturn void dbo_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dbo_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints --stats if asked; called once just before the process exits. */
void dbo_print_stats(void);
void dbo_stats_init(void);
uint64_t dbo_now_ns(void);

#endif
