/* The dispatcher: where translated code lands when it leaves the cache. It
 * finds or builds the next fragment, links direct exits, fills the
 * indirect-branch table, and hands syscalls to the gate. */
#include "translator/translator.h"

#include <asm/prctl.h>
#include <cpuid.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cache/cache.h"
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

static struct guest_context *main_context;

uint64_t translator_indirect_hits(void)
{
    return main_context ? main_context->ind_hits : 0;
}

struct guest_context *context_create(bool use_fsgsbase)
{
    unsigned a, b, c, d;
    __cpuid_count(0xd, 0, a, b, c, d);
    if (b > CTX_XSAVE_SIZE)
        dbo_fatal("this CPU's XSAVE area (%u bytes) is larger than dbo supports", b);
    struct guest_context *ctx = mmap(NULL, sizeof *ctx, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ctx == MAP_FAILED)
        dbo_fatal("cannot allocate a thread context: %m");
    ctx->self = (uint64_t)ctx;
    if (!main_context)
        main_context = ctx;
    ctx->exit_entry = (uint64_t)dbo_exit_entry;
    ctx->host_fs = read_fs_base();
    ctx->xsave_mask = xcr0();
    ctx->use_fsgsbase = use_fsgsbase;
    ctx->rflags = 0x202; /* IF, and the always-one bit */
    /* Start the guest with every vector/x87 component in its initial
     * state: save ours to get a valid MXCSR and header, then mark all
     * components as "init" in XSTATE_BV so xrstor clears them. */
    uint32_t lo = (uint32_t)ctx->xsave_mask, hi = (uint32_t)(ctx->xsave_mask >> 32);
    __asm__ volatile("xsave64 %0" : "+m"(ctx->xsave) : "a"(lo), "d"(hi));
    memset(ctx->xsave + 512, 0, 64);
    uint32_t mxcsr = 0x1f80;
    memcpy(ctx->xsave + 24, &mxcsr, 4);
    uint16_t fcw = 0x37f;
    memcpy(ctx->xsave, &fcw, 2);
    return ctx;
}

void translator_flush(struct guest_context *ctx)
{
    cache_flush_all();
    memset(ctx->ibl, 0, sizeof ctx->ibl);
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

static struct fragment *fragment_for(struct guest_context *ctx, uint64_t pc)
{
    struct fragment *frag = cache_lookup(pc);
    if (!frag)
        frag = translate_fragment(ctx, pc);
    if (!frag)
        guest_segfault(pc);
    return frag;
}

void *dispatch(struct guest_context *ctx)
{
    struct exit_record *exit = (struct exit_record *)ctx->exit_record;
    dbo_stats.dispatcher_entries++;
    uint64_t flushes = dbo_stats.flushes;
    struct fragment *frag = NULL;

    switch (exit->kind) {
    case EXIT_DIRECT:
        ctx->rip = exit->target;
        frag = fragment_for(ctx, ctx->rip);
        if (!exit->linked && dbo_stats.flushes == flushes) {
            cache_link(exit, frag);
            dbo_stats.direct_links++;
        }
        break;
    case EXIT_INDIRECT: {
        ctx->rip = ctx->ind_target;
        dbo_stats.indirect_misses++;
        frag = fragment_for(ctx, ctx->rip);
        struct ibl_entry *slot = &ctx->ibl[ctx->rip & (IBL_ENTRIES - 1)];
        slot->neg_guest_pc = -ctx->rip;
        slot->cache_pc = (uint64_t)frag->cache_pc;
        break;
    }
    case EXIT_SYSCALL:
        ctx->rip = exit->target;
        dbo_stats.syscalls++;
        syscall_gate(ctx);
        break;
    }
    if (ctx->pending_signals) {
        signals_deliver_pending(ctx);
        frag = NULL;
    }
    if (!frag || frag->guest_pc != ctx->rip)
        frag = fragment_for(ctx, ctx->rip);
    return frag->cache_pc;
}

void translator_run(struct guest_context *ctx)
{
    struct fragment *frag = fragment_for(ctx, ctx->rip);
    dbo_enter_guest(ctx, frag->cache_pc);
}
