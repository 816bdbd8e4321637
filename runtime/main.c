/* dbo's command line: parse options, find the program, load it, run it. */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loader/loader.h"
#include "optimizer/optimizer.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "translator/translator.h"

#define HWCAP2_FSGSBASE (1ul << 1)

static const char usage[] =
    "usage: dbo [options] [--] PROGRAM [ARGS...]\n"
    "Runs PROGRAM (a path, or a name looked up on PATH) under dynamic binary\n"
    "translation: every instruction runs from dbo's code cache and every\n"
    "system call passes through dbo's gate.\n"
    "\n"
    "options:\n"
    "  --stats[=FILE]   print translation counters at exit (to stderr or FILE)\n"
    "  --no-fsgsbase    switch %fs/%gs with arch_prctl, not rdfsbase/wrfsbase\n"
    "  --verbose        log every fragment and system call to stderr\n"
    "  --perf-map       name translated code in /tmp/perf-PID.map for perf\n"
    "                   (kind of code and guest address: benchmarks/profile)\n"
    "  --cache-size=SIZE  bound the code cache to SIZE bytes (suffix K, M or G;\n"
    "                   at least 64K); when full it is flushed and refilled\n"
    "  -h, --help       show this help and exit\n"
    "  --version        show the version and exit\n"
    "\n"
    "translation choices (to measure them; see benchmarks/README.md):\n"
    "  --fragment-branches=N  a fragment continues on the fall-through path\n"
    "                   of up to N conditional branches (0-16, default 8)\n"
    "  --trace-threshold=N  NET traces: a trace head (loop entry, trace exit)\n"
    "                   that ran N times becomes a trace of the path it takes\n"
    "                   next (default 0: no traces, measured slower; try 50)\n"
    "  --trace-indirect traces follow indirect jumps and calls behind a guard\n"
    "  --no-flags-liveness  trace head counters stay\n"
    "                   flag-free even where the guest's flags are dead\n"
    "  --inline-targets each indirect branch first checks the target it took\n"
    "                   the first time (off: measured slower on lua)\n"
    "  --fp-xsave       the context switch saves the vector state with\n"
    "                   xsaveopt/xrstor (as where the CPU enables state the hand\n"
    "                   code does not know), not by hand (140 ns a trip, not 25)\n"
    "  --no-inner-entries  a branch into the middle of a fragment made before\n"
    "                   gets a fragment of its own (a copy of the rest), not\n"
    "                   an entry there\n"
    "  --no-table-jumps  a jump through a table (switch, computed goto) looks\n"
    "                   its target up in the shared table, not in its own\n"
    "  --no-return-prefetch  calls do not prefetch the table slot their return\n"
    "                   will read (the prefetch makes cc1 5% faster)\n"
    "  --return-stack   calls and returns as real call/ret on a stack of dbo's,\n"
    "                   each return checked at its call's pad, so the host's\n"
    "                   return predictor sees them (off by default: it made\n"
    "                   gcc 9% faster but interpreters 25-35% slower)\n";

/* Options dbo hands to children that the guest execve's. */
static char *kept_options[16];

/* `--name` sets *flag, `--no-name` clears it; false if arg is neither. */
static bool switch_option(const char *arg, const char *name, bool *flag)
{
    if (strncmp(arg, "--", 2))
        return false;
    bool on = strncmp(arg + 2, "no-", 3) != 0;
    if (strcmp(arg + (on ? 2 : 5), name))
        return false;
    *flag = on;
    return true;
}

/* "16M" -> 16 << 20; 0 if malformed. */
static uint64_t parse_size(const char *s)
{
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || *s == '-')
        return 0;
    int shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    }
    if (*end || n > (1ull << 40) >> shift)
        return 0;
    return (uint64_t)n << shift;
}

static int parse_options(int argc, char **argv)
{
    dbo_opts.fragment_branches = 8;
    dbo_opts.return_prefetch = true;
    dbo_opts.table_jumps = true;
    dbo_opts.inner_entries = true;
    dbo_opts.trace_threshold = OPTIMIZER_DEFAULT_TRACE_THRESHOLD;
    dbo_opts.flags_liveness = true;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || !a[1])
            break;
        bool keep = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            exit(0);
        } else if (!strcmp(a, "--version")) {
            printf("dbo %s\n", DBO_VERSION);
            exit(0);
        } else if (!strcmp(a, "--stats")) {
            dbo_opts.stats = true;
        } else if (!strncmp(a, "--stats=", 8)) {
            if (!a[8])
                dbo_fatal("option --stats= needs a file name");
            dbo_opts.stats = true;
            dbo_opts.stats_file = a + 8;
        } else if (!strcmp(a, "--no-fsgsbase")) {
            dbo_opts.no_fsgsbase = true;
        } else if (!strncmp(a, "--cache-size=", 13)) {
            dbo_opts.cache_size = parse_size(a + 13);
            if (dbo_opts.cache_size < (64 << 10))
                dbo_fatal("option --cache-size= needs a size of at least 64K (like 512K or "
                          "16M), not '%s'",
                          a + 13);
        } else if (!strncmp(a, "--fragment-branches=", 20)) {
            char *end;
            long n = strtol(a + 20, &end, 10);
            if (!a[20] || *end || n < 0 || n > TRANSLATOR_MAX_BRANCHES_INSIDE)
                dbo_fatal("option --fragment-branches= needs a number from 0 to %d, not '%s'",
                          TRANSLATOR_MAX_BRANCHES_INSIDE, a + 20);
            dbo_opts.fragment_branches = (int)n;
        } else if (!strncmp(a, "--trace-threshold=", 18)) {
            char *end;
            long n = strtol(a + 18, &end, 10);
            if (!a[18] || *end || n < 0 || n > 1000000)
                dbo_fatal("option --trace-threshold= needs a number from 0 (no traces) to "
                          "1000000, not '%s'",
                          a + 18);
            dbo_opts.trace_threshold = (uint32_t)n;
        } else if (switch_option(a, "trace-indirect", &dbo_opts.trace_indirect) ||
                   switch_option(a, "flags-liveness", &dbo_opts.flags_liveness) ||
                   switch_option(a, "return-prefetch", &dbo_opts.return_prefetch) ||
                   switch_option(a, "table-jumps", &dbo_opts.table_jumps) ||
                   switch_option(a, "inner-entries", &dbo_opts.inner_entries) ||
                   switch_option(a, "fp-xsave", &dbo_opts.fp_xsave) ||
                   switch_option(a, "return-stack", &dbo_opts.return_stack)) {
        } else if (!strcmp(a, "--inline-targets")) {
            dbo_opts.inline_targets = true;
        } else if (!strcmp(a, "--verbose")) {
            dbo_opts.verbose = true;
        } else if (!strcmp(a, "--perf-map")) {
            dbo_opts.perf_map = true;
        } else if (!strcmp(a, "--argv0")) {
            if (i + 1 >= argc)
                dbo_fatal("option --argv0 needs an argument");
            dbo_opts.argv0 = argv[++i];
            keep = false; /* internal: set anew on every execve */
        } else {
            dbo_fatal("unknown option '%s' (try 'dbo --help')", a);
        }
        if (keep && dbo_opts.option_argc < (int)(sizeof kept_options / sizeof kept_options[0]))
            kept_options[dbo_opts.option_argc++] = argv[i];
    }
    dbo_opts.option_argv = kept_options;
    return i;
}

/* The vDSO stays where the kernel put it and is passed to the guest; its
 * code is translated like any other guest code. Its extent is read off its
 * own program headers (AT_SYSINFO_EHDR is its ELF header): reading
 * /proc/self/maps for it cost 60 us of every start. */
static void register_vdso(void)
{
    const Elf64_Ehdr *vdso = (const Elf64_Ehdr *)getauxval(AT_SYSINFO_EHDR);
    if (!vdso)
        return;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)((const uint8_t *)vdso + vdso->e_phoff);
    uint64_t start = UINT64_MAX, end = 0; /* link-time addresses; the header is at start */
    for (int i = 0; i < vdso->e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        if (ph[i].p_vaddr - ph[i].p_offset < start)
            start = ph[i].p_vaddr - ph[i].p_offset;
        if (ph[i].p_vaddr + ph[i].p_memsz > end)
            end = ph[i].p_vaddr + ph[i].p_memsz;
    }
    if (end > start) /* (the map rounds it up to pages) */
        guest_vm_record((uint64_t)vdso, end - start, PROT_READ | PROT_EXEC);
}

/* LD_* variables that a parent dbo hid from this dbo's own loader. */
static char **guest_environment(void)
{
    extern char **environ;
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, "DBO_GUEST_LD_", 13))
            *e += 10;
    return environ;
}

int main(int argc, char **argv)
{
    ssize_t n = readlink("/proc/self/exe", dbo_self_path, sizeof dbo_self_path - 1);
    if (n <= 0)
        dbo_fatal("cannot find the dbo executable: %s", strerror(errno));
    dbo_self_path[n] = 0;

    int first = parse_options(argc, argv);
    if (first >= argc)
        dbo_fatal("no program given (usage: dbo [options] [--] PROGRAM [ARGS...])");
    const char *name = argv[first];
    char *path = loader_find_program(name);
    if (!path)
        dbo_fatal("%s: %s", name, errno == ENOENT ? "command not found" : strerror(errno));
    int err;
    const char *why = loader_check_executable(path, &err);
    if (why)
        dbo_fatal("%s: %s", path, why);

    char **guest_argv = &argv[first];
    if (dbo_opts.argv0)
        guest_argv[0] = (char *)dbo_opts.argv0;
    char **guest_envp = guest_environment();

    bool fsgsbase = !dbo_opts.no_fsgsbase && (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE);
    if (!fsgsbase)
        dbo_opts.no_fsgsbase = true;
    dbo_stats_init();
    register_vdso();
    struct guest_context *ctx = context_create(fsgsbase);
    context_set_gs(ctx); /* before any handler that reads %gs can run */
    signals_init();
    process_init();
    syscall_fast_init();
    ctx->ts.tid = gettid();
    {
        uint64_t mask;
        syscall_raw(14 /* rt_sigprocmask */, 0, 0, (long)&mask, 8, 0, 0);
        ctx->ts.sigmask = mask;
    }

    struct guest_start start;
    loader_load(path, guest_argv, guest_envp, &start);
    ctx->rip = start.entry;
    ctx->gpr[GPR_RSP] = start.stack;
    translator_run(ctx);
}
