/* The dispatcher: where translated code lands when it leaves the cache. It
 * finds or builds the next fragment, links direct exits, fills the
 * indirect-branch table, and hands syscalls to the gate. */
#include "translator/translator.h"

#include <asm/prctl.h>
#include <sys/platform/x86.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cache/cache.h"
#include "optimizer/optimizer.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"

static uint64_t read_fs_base(void)
{
    uint64_t base;
    syscall(SYS_arch_prctl, ARCH_GET_FS, &base);
    return base;
}

static uint64_t xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

void context_set_gs(struct guest_context *ctx)
{
    if (ctx->use_fsgsbase)
        __asm__ volatile("wrgsbase %0" ::"r"(ctx));
    else
        syscall(SYS_arch_prctl, ARCH_SET_GS, ctx);
}

static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static struct guest_context *live_contexts, *free_contexts;
/* Bumped whenever indirect-table entries go stale (a flush, an invalidated
 * fragment): a free context whose table predates it must clear it. */
static uint64_t ibl_epoch;
static int live_threads;
/* from threads that are gone */
static uint64_t exited_indirect_hits, exited_inline_hits, exited_fast_syscalls;
static uint64_t exited_return_hits, exited_return_misses, exited_site_hits;
static uint64_t flush_epoch;

static __thread bool holding_lock;

void translator_lock(void)
{
    pthread_mutex_lock(&big_lock);
    holding_lock = true;
}

void translator_unlock(void)
{
    holding_lock = false;
    pthread_mutex_unlock(&big_lock);
}

bool translator_trylock(void)
{
    if (pthread_mutex_trylock(&big_lock))
        return false;
    holding_lock = true;
    return true;
}

bool translator_lock_held(void)
{
    return holding_lock;
}

/* The slot of a two-way table (ctx->ibl or ctx->ibl_victim) that holds
 * guest_pc, or NULL. */
static struct ibl_entry *ibl_find(struct ibl_entry *table, uint64_t guest_pc)
{
    struct ibl_entry *e = &table[ibl_index(guest_pc)];
    if (e[0].neg_guest_pc == -guest_pc)
        return &e[0];
    if (e[1].neg_guest_pc == -guest_pc)
        return &e[1];
    return NULL;
}

/* Puts an entry first in its slot pair; what was first moves second, and
 * returns what was second (its tag 0 if nothing). */
static struct ibl_entry ibl_push(struct ibl_entry *table, struct ibl_entry entry)
{
    struct ibl_entry *e = &table[ibl_index(-entry.neg_guest_pc)];
    struct ibl_entry out = {0};
    if (e[0].neg_guest_pc != entry.neg_guest_pc) { /* also drops a copy in e[1] */
        if (e[1].neg_guest_pc != entry.neg_guest_pc)
            out = e[1];
        e[1] = e[0];
    }
    e[0] = entry;
    return out;
}

/* Puts guest_pc first in its slot pair of the table; what that pushes out
 * goes to the victim table (and what that pushes out is dropped). Only
 * the thread itself adds entries, in the dispatcher; other threads only
 * clear tags or retarget entries, under the lock. */
static void ibl_insert(struct guest_context *ctx, uint64_t guest_pc, uint64_t cache_pc)
{
    struct ibl_entry *in_victim = ibl_find(ctx->ibl_victim, guest_pc);
    if (in_victim)
        in_victim->neg_guest_pc = 0; /* it moves up */
    struct ibl_entry out =
        ibl_push(ctx->ibl, (struct ibl_entry){.neg_guest_pc = -guest_pc, .cache_pc = cache_pc});
    if (out.neg_guest_pc)
        ibl_push(ctx->ibl_victim, out);
}

static void ibl_clear(struct guest_context *ctx)
{
    for (int i = 0; i < IBL_SLOTS; i++)
        ctx->ibl[i].neg_guest_pc = ctx->ibl_victim[i].neg_guest_pc = 0;
    table_jump_clear(ctx);
}

/* An invalidated fragment must not be reachable through any thread's
 * indirect table: its guest pc has two slots to check. */
static void forget_indirect(struct fragment *frag, void *arg)
{
    (void)arg;
    ibl_epoch++; /* free contexts' tables may name it too */
    for (struct guest_context *c = live_contexts; c; c = c->ts.next) {
        struct ibl_entry *e = ibl_find(c->ibl, frag->guest_pc);
        if (e)
            e->neg_guest_pc = 0;
        if ((e = ibl_find(c->ibl_victim, frag->guest_pc)))
            e->neg_guest_pc = 0;
        if (frag->site_target)
            table_jump_forget(c, frag->guest_pc);
    }
}

/* Every thread's indirect table entry for guest_pc, if any, leads to
 * cache_pc from now on. */
static void retarget_indirect(uint64_t guest_pc, uint64_t cache_pc, bool in_sites)
{
    for (struct guest_context *c = live_contexts; c; c = c->ts.next) {
        if (in_sites)
            table_jump_retarget(c, guest_pc, cache_pc);
        struct ibl_entry *e = ibl_find(c->ibl, guest_pc);
        if (e)
            e->cache_pc = cache_pc;
        if ((e = ibl_find(c->ibl_victim, guest_pc)))
            e->cache_pc = cache_pc;
    }
}

void translator_install_trace(struct fragment *trace)
{
    struct fragment *head = cache_lookup(trace->guest_pc);
    bool in_sites = head && head->site_target;
    trace->site_target = in_sites;
    cache_install_trace(trace);
    cache_protect_code(trace);
    /* Indirect branches to the head go to the trace from now on (the old
     * head stays valid code until a flush, for a thread just looking it up). */
    retarget_indirect(trace->guest_pc, fragment_indirect_entry(trace), in_sites);
}

void translator_contexts_each(void (*fn)(struct guest_context *, void *), void *arg)
{
    for (struct guest_context *c = live_contexts; c; c = c->ts.next)
        fn(c, arg);
    for (struct guest_context *c = free_contexts; c; c = c->ts.next)
        fn(c, arg);
}

void translator_invalidate(uint64_t start, uint64_t len)
{
    cache_invalidate_range(start, len, forget_indirect, NULL);
}

bool translator_write_fault(uint64_t addr)
{
    return cache_write_fault(addr, forget_indirect, NULL);
}

bool translator_unprotect_code(void)
{
    return cache_unprotect_all(forget_indirect, NULL);
}
int translator_live_threads(void)
{
    return live_threads;
}

uint64_t translator_fast_syscalls(void)
{
    uint64_t n = exited_fast_syscalls;
    for (struct guest_context *c = live_contexts; c; c = c->ts.next)
        n += c->ts.fast_syscalls;
    return n;
}

uint64_t translator_indirect_hits(uint64_t *inline_hits)
{
    uint64_t hits = exited_indirect_hits;
    *inline_hits = exited_inline_hits;
    for (struct guest_context *c = live_contexts; c; c = c->ts.next) {
        hits += c->ind_hits;
        *inline_hits += c->ts.inline_hits;
    }
    return hits;
}

uint64_t translator_site_hits(void)
{
    uint64_t n = exited_site_hits;
    for (struct guest_context *c = live_contexts; c; c = c->ts.next)
        n += c->site_hits;
    return n;
}

uint64_t translator_return_stack_counts(uint64_t *misses)
{
    uint64_t hits = exited_return_hits;
    *misses = exited_return_misses;
    for (struct guest_context *c = live_contexts; c; c = c->ts.next) {
        hits += c->ts.return_hits;
        *misses += c->ts.return_misses;
    }
    return hits;
}

/* A context whose thread is gone: keep its counts, and note when its
 * indirect table was last right (context_create may keep it). */
static void put_on_free_list(struct guest_context *ctx)
{
    exited_indirect_hits += ctx->ind_hits;
    exited_inline_hits += ctx->ts.inline_hits;
    exited_fast_syscalls += ctx->ts.fast_syscalls;
    exited_return_hits += ctx->ts.return_hits;
    exited_return_misses += ctx->ts.return_misses;
    exited_site_hits += ctx->site_hits;
    ctx->site_hits = 0;
    optimizer_thread_exit(ctx);
    ctx->ts.ibl_epoch = ibl_epoch;
    ctx->ts.next = free_contexts;
    free_contexts = ctx;
}

/* A context 2 MiB-aligned, the first one's first 2 MiB in a huge page
 * where the kernel gives one (THP, when asked for): its indirect table is
 * 1 MiB written at random (the victim table after it much less), which in
 * 4 KiB pages cost /bin/true 315 of its 700 page faults
 * and 10% of its time. Only the first: a huge page is 2 MiB of memory
 * for each thread, where 4 KiB pages hold what a thread touches. */
#define HUGE_PAGE (2ul << 20)
#define CTX_MAPPED ((sizeof(struct guest_context) + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1))
_Static_assert(CTX_IBL_VICTIM <= HUGE_PAGE, "the table fits the first huge page");
static struct guest_context *map_context(void)
{
    uint8_t *m = mmap(NULL, CTX_MAPPED + HUGE_PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        dbo_fatal("cannot allocate a thread context: %m");
    uint8_t *aligned = (uint8_t *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
    if (aligned > m)
        munmap(m, aligned - m);
    munmap(aligned + CTX_MAPPED, m + CTX_MAPPED + HUGE_PAGE - (aligned + CTX_MAPPED));
    static bool first = true;
    if (first)
        madvise(aligned, HUGE_PAGE, MADV_HUGEPAGE);
    first = false;
    return (struct guest_context *)aligned;
}

/* What dbo_return_lookup hands the dispatcher on a miss. */
struct exit_record dbo_return_miss_record = {.kind = EXIT_INDIRECT};

/* The return stack's memory (see return_stack.S), a guard page below. */
static uint8_t *map_return_stack(void)
{
    uint8_t *m = mmap(NULL, RETURN_STACK_GUARD + RETURN_STACK_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        dbo_fatal("cannot allocate a return stack: %m");
    mprotect(m, RETURN_STACK_GUARD, PROT_NONE);
    return m;
}

bool translator_return_stack_overflow(struct guest_context *ctx, uint64_t addr)
{
    uint64_t base = (uint64_t)ctx->ts.return_stack;
    return base && addr >= base && addr < base + RETURN_STACK_GUARD;
}

/* cpuid is asked once: in a virtual machine each one traps to the
 * hypervisor (3.5 us here, where a thread's whole start costs 35 us). The
 * memo keeps the answer for the guest's ld.so, which asks too. */
uint32_t translator_xsave_size(void)
{
    static uint32_t size;
    if (!size) {
        uint32_t regs[4];
        cpuid_answer(0xd, 0, regs);
        if (regs[1] > CTX_XSAVE_SIZE)
            dbo_fatal("this CPU's XSAVE area (%u bytes) is larger than dbo supports", regs[1]);
        size = regs[1];
    }
    return size;
}

/* Where this CPU's XSAVE image keeps each component (cpuid leaf 0xd):
 * the AVX-512 ones differ between vendors (k0-7 at 1088 on Intel, 832 on
 * AMD). */
static uint32_t xsave_offset(int component, uint32_t *size)
{
    uint32_t regs[4];
    cpuid_answer(0xd, (uint32_t)component, regs);
    *size = regs[0];
    return regs[1];
}

/* Components the context switch's hand code knows: x87 (left in the
 * registers), SSE, AVX, and AVX-512's three (with AVX512BW, for kmovq). */
#define FP_BY_HAND 0xe7ull

static bool fp_by_hand(uint64_t xcr0_mask)
{
    uint64_t avx512 = xcr0_mask & 0xe0;
    return (xcr0_mask & ~FP_BY_HAND) == 0 && (xcr0_mask & 3) == 3 &&
           (!avx512 || (avx512 == 0xe0 && CPU_FEATURE_ACTIVE(AVX512BW)));
}

static void fp_state_init(struct guest_context *ctx)
{
    uint32_t size;
    ctx->ts.fp_ymm = CTX_XSAVE + xsave_offset(2, &size);
    ctx->ts.fp_k = CTX_XSAVE + xsave_offset(5, &size);
    ctx->ts.fp_zmmh = CTX_XSAVE + xsave_offset(6, &size);
    ctx->ts.fp_hi16 = CTX_XSAVE + xsave_offset(7, &size);
    ctx->ts.fp_xsave = dbo_opts.fp_xsave || !fp_by_hand(ctx->xsave_mask);
    context_fp_reset(ctx);
}

void context_fp_reset(struct guest_context *ctx)
{
    /* XSTATE_BV 0: xrstor clears every component; context_fp_written()
     * makes that explicit for the hand code. */
    memset(ctx->xsave, 0, translator_xsave_size());
    uint16_t fcw = 0x37f;
    memcpy(ctx->xsave, &fcw, 2);
    uint32_t mxcsr = 0x1f80;
    memcpy(ctx->xsave + 24, &mxcsr, 4);
    context_fp_written(ctx);
}

void context_fp_written(struct guest_context *ctx)
{
    ctx->ts.fp_reload = 1;
    ctx->ts.fp_clean = 0; /* the image says, loaded whole */
    if (ctx->ts.fp_xsave) /* xrstor reads the header */
        return;
    uint8_t *x = ctx->xsave;
    uint64_t in_use;
    memcpy(&in_use, x + 512, 8);
    if (!(in_use & 1)) { /* x87 initial: control word 0x37f, all else 0 */
        memset(x, 0, 24);
        memset(x + 32, 0, 128);
        uint16_t fcw = 0x37f;
        memcpy(x, &fcw, 2);
    }
    if (!(in_use & 2))
        memset(x + 160, 0, 256); /* xmm0-15 */
    uint32_t mxcsr;
    memcpy(&mxcsr, x + 24, 4);
    mxcsr &= 0xffff; /* reserved bits would fault fxrstor */
    memcpy(x + 24, &mxcsr, 4);
    static const int extended[] = {2, 5, 6, 7};
    for (size_t i = 0; i < sizeof extended / sizeof *extended; i++) {
        uint64_t bit = 1ull << extended[i];
        uint32_t size, offset = xsave_offset(extended[i], &size);
        if ((ctx->xsave_mask & bit) && !(in_use & bit))
            memset(x + offset, 0, size);
    }
    in_use = ctx->xsave_mask;
    memcpy(x + 512, &in_use, 8);
    memset(x + 520, 0, 8); /* XCOMP_BV: the standard format */
}

void context_fp_sync(struct guest_context *ctx)
{
    if (ctx->ts.fp_xsave || ctx->ts.fp_reload) /* the image has them already */
        return;
    uint8_t legacy[512] __attribute__((aligned(16)));
    __asm__ volatile("fxsave64 %0" : "=m"(legacy));
    memcpy(ctx->xsave, legacy, 24);            /* control, status, tags, last op */
    memcpy(ctx->xsave + 32, legacy + 32, 128); /* st0-7 (MXCSR: the image's) */
}

struct guest_context *context_create(bool use_fsgsbase)
{
    translator_xsave_size(); /* checks it fits */
    struct guest_context *ctx = free_contexts;
    if (ctx) {
        free_contexts = ctx->ts.next;
        /* Its table is still right unless code was invalidated or flushed
         * since its last thread ended (clearing 1 MiB by hand cost more
         * than the rest of starting a thread). */
        if (ctx->ts.ibl_epoch != ibl_epoch)
            ibl_clear(ctx);
        void *altstack = ctx->ts.host_altstack;
        uint8_t *return_stack = ctx->ts.return_stack;
        /* Not siginfo (written before it is read) nor the xsave area
         * (rewritten below): 20 KiB a thread. */
        memset(ctx, 0, offsetof(struct guest_context, siginfo));
        memset(&ctx->ts, 0, offsetof(struct guest_context, ibl) - CTX_THREAD_STATE);
        memset(ctx->trace_counts, 0, translator_counters_touched() * sizeof *ctx->trace_counts);
        ctx->ts.host_altstack = altstack;
        ctx->ts.return_stack = return_stack;
    } else {
        ctx = map_context();
        ctx->ts.return_stack = map_return_stack();
        table_jump_init_context(ctx);
    }
    /* An empty return stack: %rsp at its bottom entry, which sends a
     * return that pops it to the table lookup. */
    uint8_t *top = ctx->ts.return_stack + RETURN_STACK_GUARD + RETURN_STACK_SIZE;
    uint64_t empty = (uint64_t)dbo_return_empty;
    memcpy(top - 8, &empty, 8);
    ctx->ts.return_sp = ctx->ts.return_sp_empty = (uint64_t)(top - 8);
    ctx->ts.return_lookup = (uint64_t)dbo_return_lookup;
    ctx->ts.victim_lookup = (uint64_t)dbo_victim_lookup;
    ctx->ts.victim_countdown = VICTIM_PROMOTE_EVERY;
    ctx->site_countdown = SITE_LEARN_EVERY;
    ctx->self = (uint64_t)ctx;
    ctx->exit_entry = (uint64_t)dbo_exit_entry;
    ctx->ts.stub_entry = (uint64_t)dbo_stub_entry;
    ctx->ts.syscall_entry = (uint64_t)dbo_syscall_fast;
    ctx->ts.syscall_check =
        CPU_FEATURE_ACTIVE(BMI2) ? (uint64_t)dbo_syscall_check : (uint64_t)dbo_syscall_full;
    ctx->host_fs = read_fs_base();
    ctx->xsave_mask = xcr0();
    ctx->use_fsgsbase = use_fsgsbase;
    ctx->rflags = 0x202; /* IF, and the always-one bit */
    ctx->ts.flush_epoch = flush_epoch;
    ctx->ts.is_main = !live_contexts && !live_threads;
    fp_state_init(ctx);
    ctx->ts.next = live_contexts;
    live_contexts = ctx;
    live_threads++;
    return ctx;
}

void translator_after_fork(struct guest_context *ctx)
{
    while (live_contexts) {
        struct guest_context *c = live_contexts;
        live_contexts = c->ts.next;
        if (c != ctx) {
            put_on_free_list(c);
        }
    }
    ctx->ts.next = NULL;
    live_contexts = ctx;
    live_threads = 1;
    translator_perf_map_after_fork();
}

void context_release(struct guest_context *ctx)
{
    for (struct guest_context **p = &live_contexts; *p; p = &(*p)->ts.next) {
        if (*p == ctx) {
            *p = ctx->ts.next;
            break;
        }
    }
    live_threads--;
    put_on_free_list(ctx);
}

/* The return stack's pads are cache code: after a flush, a thread empties
 * its stack before it runs cache code again (the flushing thread at once:
 * its memory may be reused right away), so that no return goes to memory
 * that was retired or reused. */
static void empty_return_stack(struct guest_context *ctx)
{
    ctx->ts.return_sp = ctx->ts.return_sp_empty;
}

static void catch_up_with_flush(struct guest_context *ctx)
{
    if (ctx->ts.flush_epoch != flush_epoch)
        empty_return_stack(ctx);
    ctx->ts.flush_epoch = flush_epoch;
}

void translator_flush(struct guest_context *ctx)
{
    bool others_in_cache = false;
    for (struct guest_context *c = live_contexts; c; c = c->ts.next)
        others_in_cache |= c != ctx && c->ts.in_cache;
    cache_flush_all(others_in_cache, flush_epoch + 1);
    for (struct guest_context *c = live_contexts; c; c = c->ts.next)
        memset(c->trace_counts, 0, translator_counters_used() * sizeof *c->trace_counts);
    translator_counters_reset();
    flush_epoch++;
    ibl_epoch++;
    ctx->ts.flush_epoch = flush_epoch;
    empty_return_stack(ctx);
    /* Only the tags: a thread that matched a tag just before may still
     * load the old cache address, which stays valid until it returns. */
    for (struct guest_context *c = live_contexts; c; c = c->ts.next)
        ibl_clear(c);
    table_jump_flush();
}

/* Which retired code the threads that were in the cache at a flush can
 * still reach: each such thread that has not come through the dispatcher
 * since, while running, anything retired after the last flush it saw
 * (table hits may have taken it into code newer than that); while blocked
 * in a call the gate's fast path makes, only the code it returns to, which
 * this (by setting its syscall state to 2) makes it leave straight for the
 * dispatcher once the call returns (fast_gate.S), and so only the
 * generation of that code. A thread blocked for good (a server's accept,
 * a join) would otherwise keep every chunk retired after it blocked, and
 * flushes would run out of places to map new chunks near the code. */
struct retired_in_use {
    uint64_t running_since; /* generations after this one: all kept */
    uint64_t blocked_in[64];
    int n_blocked;
};

static bool retired_generation_in_use(uint64_t generation, void *arg)
{
    struct retired_in_use *use = arg;
    if (generation > use->running_since)
        return true;
    for (int i = 0; i < use->n_blocked; i++)
        if (use->blocked_in[i] == generation)
            return true;
    return false;
}

static void maybe_free_retired(void)
{
    struct retired_in_use use = {.running_since = UINT64_MAX};
    for (struct guest_context *c = live_contexts; c; c = c->ts.next) {
        if (!c->ts.in_cache || c->ts.flush_epoch == flush_epoch)
            continue;
        uint64_t state = 1;
        bool blocked = __atomic_compare_exchange_n(&c->ts.syscall_state, &state, 2, false,
                                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ||
                       state == 2;
        uint64_t generation =
            blocked
                ? cache_retired_generation(__atomic_load_n(&c->ts.syscall_return, __ATOMIC_ACQUIRE))
                : 0;
        if (blocked && use.n_blocked < (int)(sizeof use.blocked_in / sizeof *use.blocked_in)) {
            if (generation)
                use.blocked_in[use.n_blocked++] = generation;
        } else if (c->ts.flush_epoch < use.running_since) {
            use.running_since = c->ts.flush_epoch;
        }
    }
    cache_free_retired(retired_generation_in_use, &use);
}

/* A jump to guest memory that is not executable: the guest dies of SIGSEGV
 * as it would natively (delivery to a guest handler comes with precise
 * fault handling). */
static _Noreturn void guest_segfault(uint64_t pc)
{
    if (dbo_opts.verbose)
        dbo_log("guest jumped to non-executable address 0x%" PRIx64, pc);
    dbo_print_stats();
    signal(SIGSEGV, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSEGV);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGSEGV);
    _exit(139);
}

/* The fragment for pc, translated if need be. An indirect branch's new
 * target gets a fragment of its own, not an inner entry: the stub an entry
 * has for indirect branches would add a jump to every one of them (an
 * interpreter's handlers are reached so, and each runs into the next). */
static struct fragment *fragment_for(struct guest_context *ctx, uint64_t pc, bool indirect)
{
    struct fragment *frag = cache_lookup(pc);
    if (!frag)
        frag = translate_fragment(ctx, pc, !indirect);
    if (!frag)
        guest_segfault(pc);
    return frag;
}

/* Delivers pending signals, finds the fragment to resume at, drops the lock. */
static void *leave_dispatch(struct guest_context *ctx, struct fragment *frag)
{
    bool interrupted = false;
    if (ctx->pending_signals || ctx->ts.sync_signal) {
        signals_deliver_pending(ctx);
        frag = NULL;
        interrupted = true;
    }
    signals_end_sigsuspend(ctx);
    bool single_step = ctx->ts.single_step_pc && ctx->ts.single_step_pc == ctx->rip;
    struct fragment *recording = NULL;
    if (ctx->ts.recording) {
        uint64_t flushes = dbo_stats.flushes, traces = dbo_stats.traces_built;
        recording = optimizer_next_block(ctx, interrupted || single_step);
        if (dbo_stats.flushes != flushes || dbo_stats.traces_built != traces)
            frag = NULL; /* gone, or replaced by the trace */
    }
    if (recording) {
        frag = recording;
    } else if (single_step) {
        frag = translate_single(ctx, ctx->rip);
        if (!frag)
            guest_segfault(ctx->rip);
    } else if (!frag || frag->guest_pc != ctx->rip) {
        frag = fragment_for(ctx, ctx->rip, false);
    }
    ctx->ts.single_step_pc = 0;
    catch_up_with_flush(ctx); /* another thread's, while this one was in a call */
    /* Only now: the exit this thread came through may be retired code. */
    if (cache_has_retired())
        maybe_free_retired();
    /* Whatever the fast gate left (a signal took the thread out of it, or
     * a flush found it there): it is not in a call now. */
    __atomic_store_n(&ctx->ts.syscall_state, 0, __ATOMIC_RELEASE);
    ctx->ts.in_cache = true;
    translator_unlock();
    return frag->cache_pc;
}

void *dispatch(struct guest_context *ctx)
{
    translator_lock();
    ctx->ts.in_cache = false;
    ctx->ts.stepping = 0;
    catch_up_with_flush(ctx);
    struct exit_record *exit = ctx->exit_record >= STUB_ID_BASE
                                   ? exit_by_id(ctx->exit_record - STUB_ID_BASE)
                                   : (struct exit_record *)ctx->exit_record;
    dbo_stats.dispatcher_entries++;
    if (ctx->ts.recording)
        optimizer_exit_seen(ctx, exit,
                            exit->kind == EXIT_INDIRECT ? ctx->ind_target : exit_target(exit));
    uint64_t flushes = dbo_stats.flushes;
    struct fragment *frag = NULL;

    switch (exit->kind) {
    case EXIT_DIRECT:
    case EXIT_CALL:
        ctx->rip = exit_target(exit);
        frag = fragment_for(ctx, ctx->rip, false);
        /* not if the exit's fragment was flushed: just now, by
         * fragment_for() (then the record itself may be freed: test that
         * first), or before this thread got here from retired code */
        if (dbo_stats.flushes == flushes && !exit->linked && !exit_from(exit)->dead) {
            cache_link(exit, optimizer_link_target(exit, frag));
            dbo_stats.direct_links++;
        }
        break;
    case EXIT_INDIRECT: {
        if (exit == &dbo_site_miss_record) /* (a call through memory has no target register) */
            ctx->ind_target = table_jump_miss_target(ctx);
        ctx->rip = ctx->ind_target;
        dbo_stats.indirect_misses++;
        uint64_t *inline_tag = exit_inline_tag(exit);
        struct exit_record *inline_exit =
            inline_tag ? &fragment_exits(exit_from(exit))[exit->inline_exit] : NULL;
        if (inline_exit && !*inline_tag && ctx->rip) {
            /* This site's inline check predicts its first target from now on:
             * the exit's target first, then the tag that lets threads in.
             * (Before fragment_for(), which may flush the exit away.) */
            exit_set_target(inline_exit, ctx->rip);
            __atomic_store_n(inline_tag, -ctx->rip, __ATOMIC_RELEASE);
            dbo_stats.inline_targets++;
        }
        frag = fragment_for(ctx, ctx->rip, true);
        ibl_insert(ctx, ctx->rip, fragment_indirect_entry(frag));
        if (dbo_stats.flushes == flushes) /* else the exit's record may be gone */
            table_jump_learn(ctx, exit, frag);
        break;
    }
    case EXIT_STALE:
        /* Its guest bytes changed: drop it (and whatever else covers them). */
        ctx->rip = exit_target(exit);
        struct fragment *stale = exit_from(exit);
        translator_invalidate(stale->guest_pc, stale->guest_len);
        break;
    case EXIT_TRACE_HEAD:
        ctx->rip = exit_target(exit);
        optimizer_head_hot(ctx, exit_from(exit));
        break;
    case EXIT_SYSCALL_DONE:
        ctx->rip = exit_target(exit);
        syscall_fast_finish(ctx); /* (counted by the fast path) */
        break;
    case EXIT_CPUID:
        ctx->rip = exit_target(exit);
        cpuid_emulate(ctx);
        break;
    case EXIT_SYSCALL:
        ctx->rip = exit_target(exit);
        dbo_stats.syscalls++;
        syscall_gate(ctx);
        break;
    }
    return leave_dispatch(ctx, frag);
}

void *dispatch_signal(struct guest_context *ctx)
{
    translator_lock();
    ctx->ts.in_cache = false;
    ctx->ts.stepping = 0;
    catch_up_with_flush(ctx);
    return leave_dispatch(ctx, NULL);
}

void *translator_thread_entry(struct guest_context *ctx)
{
    struct fragment *frag = fragment_for(ctx, ctx->rip, false);
    ctx->ts.in_cache = true; /* from now on, as far as flushes go */
    catch_up_with_flush(ctx);
    return frag->cache_pc;
}

void translator_run(struct guest_context *ctx)
{
    translator_lock();
    struct fragment *frag = fragment_for(ctx, ctx->rip, false);
    ctx->ts.in_cache = true;
    catch_up_with_flush(ctx);
    translator_unlock();
    dbo_enter_guest(ctx, frag->cache_pc);
}
