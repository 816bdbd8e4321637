/* Host signals, as the runtime's own handler sees them (DESIGN.md decision
 * 7). A fault in translated code is mapped back to the guest instruction
 * and delivered with the exact guest state; an asynchronous signal that
 * interrupts translated code at an instruction boundary takes the thread
 * out of the cache at once, so even a loop that never leaves the cache sees
 * it; elsewhere it waits for the next fragment boundary. A fault in the
 * runtime itself ends the run with a backtrace of the runtime. */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <inttypes.h>
#include <libunwind.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ucontext.h>
#include <unistd.h>

#include "cache/cache.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "syscall/syscall_internal.h"
#include "translator/translator.h"

static struct guest_context *current_context(void)
{
    struct guest_context *ctx;
    __asm__("mov %%gs:0, %0" : "=r"(ctx));
    return ctx;
}

static const int gpr_of_greg[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                                    REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
                                    REG_R12, REG_R13, REG_R14, REG_R15};

/* Copies the interrupted guest state from the host ucontext into ctx. */
static void capture_guest_state(struct guest_context *ctx, ucontext_t *uc, uint64_t guest_pc,
                                bool spilled)
{
    greg_t *g = uc->uc_mcontext.gregs;
    for (int r = 0; r < 16; r++)
        ctx->gpr[r] = g[gpr_of_greg[r]];
    if (spilled) {
        ctx->gpr[GPR_RCX] = ctx->spill_rcx;
        ctx->gpr[GPR_RDX] = ctx->spill_rdx;
    }
    ctx->rflags = g[REG_EFL] & ~0x100ull; /* never our single-step flag */
    ctx->rip = guest_pc;
    if (ctx->use_fsgsbase)
        ctx->guest_fs = ctx->ts.signal_fs;
    if (uc->uc_mcontext.fpregs)
        read_fpstate(ctx, (const uint8_t *)uc->uc_mcontext.fpregs);
}

/* Makes the interrupted thread continue in the runtime (dbo_signal_reenter
 * on its runtime stack) once the host handler returns. */
static void redirect_to_runtime(struct guest_context *ctx, ucontext_t *uc)
{
    greg_t *g = uc->uc_mcontext.gregs;
    g[REG_RIP] = (greg_t)dbo_signal_reenter;
    g[REG_RSP] = (greg_t)ctx->host_rsp;
    g[REG_EFL] &= ~0x40400; /* DF and AC clear, as C code expects */
    ctx->ts.signal_fs = ctx->host_fs;
}

void signals_record_pending(struct guest_context *ctx, int sig, const siginfo_t *info)
{
    /* Each delivery keeps its own siginfo (a child's SIGCHLD for
     * CLD_CONTINUED, then one for CLD_EXITED), up to SIGINFO_QUEUE; past
     * that a delivery repeats the last one given. Only this handler adds,
     * only signals_deliver_pending() takes, both on this thread. */
    uint8_t tail = ctx->ts.siginfo_tail[sig - 1];
    if ((uint8_t)(tail - __atomic_load_n(&ctx->ts.siginfo_head[sig - 1], __ATOMIC_ACQUIRE)) <
        SIGINFO_QUEUE) {
        memcpy(ctx->siginfo_queue[sig - 1][tail % SIGINFO_QUEUE], info, sizeof(siginfo_t));
        __atomic_store_n(&ctx->ts.siginfo_tail[sig - 1], (uint8_t)(tail + 1), __ATOMIC_RELEASE);
    }
    /* The kernel already merged what it merges (one per signal and queue,
     * more for real-time ones): every host delivery is one guest delivery. */
    if (ctx->ts.pending_count[sig - 1] < 255)
        ctx->ts.pending_count[sig - 1]++;
    __atomic_or_fetch(&ctx->pending_signals, 1ull << (sig - 1), __ATOMIC_SEQ_CST);
}

/* libunwind's names for the calls below (its header maps each to the
 * local-only unwinder's symbol). */
#define SYMBOL_NAME(f) SYMBOL_STRING(f)
#define SYMBOL_STRING(f) #f

/* The runtime's own stack, through libunwind, loaded only now: linked in,
 * it and liblzma cost every run under dbo 0.08 ms of loading (dbo
 * --version: 0.66 -> 0.58 ms task-clock). Best effort: a crash is not the
 * time to be fussy about what is safe in a signal handler. */
static void print_backtrace(void)
{
    void *lib = dlopen("libunwind.so.8", RTLD_NOW);
    __typeof__(unw_tdep_getcontext) *get_context =
        lib ? (__typeof__(get_context))dlsym(lib, SYMBOL_NAME(unw_tdep_getcontext)) : NULL;
    __typeof__(unw_init_local) *init_local =
        lib ? (__typeof__(init_local))dlsym(lib, SYMBOL_NAME(unw_init_local)) : NULL;
    __typeof__(unw_step) *step = lib ? (__typeof__(step))dlsym(lib, SYMBOL_NAME(unw_step)) : NULL;
    __typeof__(unw_get_reg) *get_reg =
        lib ? (__typeof__(get_reg))dlsym(lib, SYMBOL_NAME(unw_get_reg)) : NULL;
    __typeof__(unw_get_proc_name) *get_proc_name =
        lib ? (__typeof__(get_proc_name))dlsym(lib, SYMBOL_NAME(unw_get_proc_name)) : NULL;
    if (!get_context || !init_local || !step || !get_reg || !get_proc_name) {
        static const char msg[] = "dbo:   (no backtrace: libunwind.so.8 not loaded)\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        return;
    }
    unw_cursor_t cursor;
    unw_context_t context;
    get_context(&context);
    init_local(&cursor, &context);
    for (int depth = 0; depth < 32 && step(&cursor) > 0; depth++) {
        unw_word_t ip, off = 0;
        char name[128] = "?";
        get_reg(&cursor, UNW_REG_IP, &ip);
        get_proc_name(&cursor, name, sizeof name, &off);
        char line[256];
        int n = snprintf(line, sizeof line, "dbo:   #%d %#lx %s+%#lx\n", depth, (unsigned long)ip,
                         name, (unsigned long)off);
        ssize_t w = write(STDERR_FILENO, line, n);
        (void)w;
    }
}

static _Noreturn void runtime_crash(struct guest_context *ctx, int sig, siginfo_t *info,
                                    ucontext_t *uc)
{
    char line[256];
    int n = snprintf(line, sizeof line,
                     "dbo: internal error: signal %d at %#llx (address %p) while serving guest "
                     "pc %#" PRIx64 "\n",
                     sig, (unsigned long long)uc->uc_mcontext.gregs[REG_RIP], info->si_addr,
                     ctx ? ctx->rip : 0);
    ssize_t w = write(STDERR_FILENO, line, n);
    print_backtrace();
    (void)w;
    _exit(127);
}

/* A write fault that may be ours: a page write-protected because it holds
 * code (now, or until another thread's write just dropped the protection:
 * then the guest may write there and the write is simply retried). */
static bool handle_code_write(struct guest_context *ctx, ucontext_t *uc, uint64_t addr, uint64_t pc,
                              bool in_cache)
{
    bool held = translator_lock_held();
    if (!held)
        translator_lock();
    bool ours = translator_write_fault(addr);
    if (!ours) {
        int prot = guest_vm_prot(addr);
        ours = prot >= 0 && (prot & PROT_WRITE);
        if (ours) /* make sure the retry can succeed */
            mprotect((void *)(addr & ~4095ul), 4096, guest_vm_host_prot(prot));
    }
    uint64_t guest_pc;
    bool spilled, at_boundary;
    if (ours && in_cache && translator_guest_pc(pc, &guest_pc, &spilled, &at_boundary)) {
        /* Its own fragment may be gone: redo the write from the runtime,
         * alone, so that code after it is translated after the write. */
        capture_guest_state(ctx, uc, guest_pc, spilled);
        ctx->ts.single_step_pc = guest_pc;
        ctx->ts.in_cache = false;
        redirect_to_runtime(ctx, uc);
    }
    if (!held)
        translator_unlock();
    return ours; /* a runtime write simply retries */
}

#define EFLAGS_TF 0x100

/* A signal to deliver while the thread is in the gate's fast path (its
 * cache code stored where it goes back to). Before the call is made, the
 * guest is exactly at its syscall instruction, rcx and rdx spilled: take
 * it out now, the call is made after the handler. Once made, send it on
 * to the slow way back (15 bytes before `cont`), which enters the
 * dispatcher: no single-stepping, which could take long enough for
 * another signal to arrive meanwhile (a second SIGCHLD would overwrite
 * the first's siginfo before the guest saw it). */
static void leave_fast_gate(struct guest_context *ctx, ucontext_t *uc, uint64_t pc)
{
    greg_t *g = uc->uc_mcontext.gregs;
    g[REG_EFL] &= ~EFLAGS_TF;
    uint64_t cont = ctx->ts.syscall_return;
    if (pc >= (uint64_t)dbo_syscall_fast_made) {
        g[REG_RIP] = (greg_t)(cont - 15);
        return;
    }
    uint64_t next;
    memcpy(&next, (const void *)(cont - 13), 8); /* slow: movabs $next, %rcx */
    capture_guest_state(ctx, uc, next - 2, true);
    ctx->ts.in_cache = false;
    redirect_to_runtime(ctx, uc);
}

/* A signal is pending for a thread in the cache. Where the guest state is
 * exact (the start of a copied guest instruction), take the thread out at
 * once; elsewhere (inside an exit or lookup sequence, or with the lock busy)
 * single-step it with the trap flag until it reaches such a place, so that
 * even a loop that never leaves the cache sees the signal promptly. */
static void leave_cache_soon(struct guest_context *ctx, ucontext_t *uc, uint64_t pc)
{
    greg_t *efl = &uc->uc_mcontext.gregs[REG_EFL];
    if (ctx->ts.in_cache && pc >= (uint64_t)dbo_syscall_fast_start &&
        pc < (uint64_t)dbo_syscall_fast_end) {
        leave_fast_gate(ctx, uc, pc);
        return;
    }
    if (ctx->ts.in_cache &&
        ((pc >= (uint64_t)dbo_return_stack_start && pc < (uint64_t)dbo_return_stack_end) ||
         (pc >= (uint64_t)dbo_victim_lookup_start && pc < (uint64_t)dbo_victim_lookup_end))) {
        /* The lookups' runtime code, which goes on into the cache: step
         * into it (or out to the dispatcher, which delivers). */
        *efl |= EFLAGS_TF;
        ctx->ts.stepping = 1;
        return;
    }
    if (!cache_owns(pc, 1) || !ctx->ts.in_cache) {
        *efl &= ~EFLAGS_TF;
        /* On the way into the cache, past the last check for signals: the
         * guest state is all in ctx still, so go back to deliver. */
        if (ctx->ts.in_cache && pc >= (uint64_t)dbo_resume_guest_start &&
            pc <= (uint64_t)dbo_resume_guest_end) {
            ctx->ts.in_cache = false;
            redirect_to_runtime(ctx, uc);
        }
        return; /* elsewhere in the runtime: it delivers on the way out */
    }
    if (translator_trylock()) {
        uint64_t guest_pc;
        bool spilled, at_boundary;
        bool exact =
            translator_guest_pc(pc, &guest_pc, &spilled, &at_boundary) && at_boundary && !spilled;
        if (exact) {
            *efl &= ~EFLAGS_TF;
            capture_guest_state(ctx, uc, guest_pc, false);
            ctx->ts.in_cache = false;
            redirect_to_runtime(ctx, uc);
        }
        translator_unlock();
        if (exact)
            return;
    }
    *efl |= EFLAGS_TF;
    ctx->ts.stepping = 1;
}

void dbo_handle_signal(int sig, siginfo_t *info, ucontext_t *uc)
{
    struct guest_context *ctx = current_context();
    uint64_t pc = uc->uc_mcontext.gregs[REG_RIP];
    bool in_cache = cache_owns(pc, 1);
    bool fault = signal_is_synchronous(sig) && info->si_code > 0; /* raised by the CPU */

    if (sig == SIGTRAP && info->si_code == TRAP_TRACE && ctx->ts.stepping) {
        /* Our own single step towards a place to deliver a signal. */
        ctx->ts.stepping = 0;
        uc->uc_mcontext.gregs[REG_EFL] &= ~EFLAGS_TF;
        if (ctx->pending_signals & ~ctx->ts.sigmask)
            leave_cache_soon(ctx, uc, pc);
        return;
    }

    if (fault && (sig == SIGSEGV || sig == SIGBUS) && pc == (uint64_t)dbo_syscall_path_load) {
        /* The fast path could not read a call's path: the C gate will
         * (and answers EFAULT if the guest's pointer is bad). */
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)dbo_syscall_full;
        return;
    }
    if (fault && sig == SIGSEGV && in_cache &&
        translator_return_stack_overflow(ctx, (uint64_t)info->si_addr)) {
        /* A call found the return stack full: empty it, make the call
         * again. The returns past it go through the table. */
        uc->uc_mcontext.gregs[REG_RSP] = (greg_t)ctx->ts.return_sp_empty;
        return;
    }
    if (fault && sig == SIGSEGV && info->si_code == SEGV_ACCERR &&
        handle_code_write(ctx, uc, (uint64_t)info->si_addr, pc, in_cache))
        return;
    if (fault) {
        if (!in_cache)
            runtime_crash(ctx, sig, info, uc);
        translator_lock();
        uint64_t guest_pc;
        bool spilled, at_boundary;
        if (!translator_guest_pc(pc, &guest_pc, &spilled, &at_boundary))
            runtime_crash(ctx, sig, info, uc);
        capture_guest_state(ctx, uc, guest_pc, spilled);
        ctx->ts.fault_err = uc->uc_mcontext.gregs[REG_ERR];
        ctx->ts.fault_trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
        ctx->ts.fault_cr2 = uc->uc_mcontext.gregs[REG_CR2];
        memcpy(ctx->siginfo[sig - 1], info, sizeof ctx->siginfo[sig - 1]);
        if (sig != SIGSEGV && sig != SIGBUS) {
            /* si_addr is the faulting instruction: the guest's, not the copy's. */
            siginfo_t *gi = (siginfo_t *)ctx->siginfo[sig - 1];
            gi->si_addr = (void *)guest_pc;
        }
        ctx->ts.sync_signal = sig;
        ctx->ts.in_cache = false;
        translator_unlock();
        redirect_to_runtime(ctx, uc);
        return;
    }

    signals_record_pending(ctx, sig, info);
    if (ctx->pending_signals & ~ctx->ts.sigmask)
        leave_cache_soon(ctx, uc, pc);
}
