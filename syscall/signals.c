/* Guest signals. The runtime owns every host handler (DESIGN.md decision
 * 1): guest dispositions are virtual, a signal the guest handles is caught
 * by an assembly handler that only marks it pending, and the dispatcher
 * builds the guest's signal frame at the next fragment boundary. The guest's
 * signal mask is also the host thread's, so blocking, sigsuspend and
 * sigtimedwait keep their kernel semantics.
 *
 * Not yet here (the threads-and-signals work): delivery of synchronous
 * faults to guest handlers with the exact guest PC, and forcing delivery in
 * loops that never leave the cache. Synchronous signals keep the default
 * host action, so a fault kills the guest exactly as it would natively. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "syscall/syscall_internal.h"
#include "translator/translator.h"

#define NSIG_GUEST 64
#define SA_RESTORER_FLAG 0x04000000

/* The kernel's struct sigaction layout (not glibc's). */
struct kernel_sigaction {
    uint64_t handler;
    uint64_t flags;
    uint64_t restorer;
    uint64_t mask;
};

struct kernel_ucontext {
    uint64_t uc_flags;
    uint64_t uc_link;
    struct {
        uint64_t ss_sp;
        int32_t ss_flags;
        int32_t pad;
        uint64_t ss_size;
    } uc_stack;
    uint64_t gregs[23]; /* glibc's REG_* order */
    uint64_t fpregs;
    uint64_t reserved[8];
    uint64_t uc_sigmask;
};

enum {
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    RDI,
    RSI,
    RBP,
    RBX,
    RDX,
    RAX,
    RCX,
    RSP,
    RIP,
    EFL,
    CSGSFS,
    ERR,
    TRAPNO,
    OLDMASK,
    CR2
};

static const int greg_of_gpr[16] = {RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI,
                                    R8,  R9,  R10, R11, R12, R13, R14, R15};

static struct kernel_sigaction guest_actions[NSIG_GUEST + 1];
/* Which of guest_actions[] are known: the synchronous signals' from the
 * start, the others' once the guest sets or asks for one. What a signal
 * had when dbo started (SIG_IGN survives exec) is asked of the kernel
 * then: asking for all 64 at startup cost 64 system calls. Under
 * actions_lock: another thread may be setting the same signal's action. */
static uint64_t actions_known;
static pthread_mutex_t actions_lock = PTHREAD_MUTEX_INITIALIZER;

static void know_action(int sig)
{
    if (__atomic_load_n(&actions_known, __ATOMIC_ACQUIRE) & (1ull << (sig - 1)))
        return;
    pthread_mutex_lock(&actions_lock);
    if (!(actions_known & (1ull << (sig - 1)))) {
        struct kernel_sigaction cur;
        if (syscall_raw(SYS_rt_sigaction, sig, 0, (long)&cur, 8, 0, 0) == 0)
            guest_actions[sig] = cur;
        __atomic_fetch_or(&actions_known, 1ull << (sig - 1), __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&actions_lock);
}

void signals_after_fork(struct guest_context *ctx)
{
    pthread_mutex_init(&actions_lock, NULL); /* a thread that held it is gone */
    /* A child starts with no signal pending (the kernel cleared its own
     * set): what had reached the parent but not its handlers stays the
     * parent's alone. */
    __atomic_store_n(&ctx->pending_signals, 0, __ATOMIC_SEQ_CST);
    memset(ctx->ts.pending_count, 0, sizeof ctx->ts.pending_count);
    memcpy(ctx->ts.siginfo_head, ctx->ts.siginfo_tail, sizeof ctx->ts.siginfo_head);
}

static struct kernel_sigaction *guest_action(int sig)
{
    know_action(sig);
    return &guest_actions[sig];
}

void dbo_host_restorer(void);

bool signal_is_synchronous(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP;
}

/* The runtime catches every signal the guest handles, and the synchronous
 * ones always (code-page write faults and its own crashes are its own). */
static void install_host(int sig)
{
    struct kernel_sigaction host = {0};
    uint64_t handler = guest_actions[sig].handler;
    bool catch = signal_is_synchronous(sig) ||
                 (handler != (uint64_t)SIG_DFL && handler != (uint64_t)SIG_IGN);
    if (!catch) {
        host.handler = handler;
        host.flags = guest_actions[sig].flags & SA_NOCLDSTOP;
        if (sig == SIGCHLD)
            host.flags |= guest_actions[sig].flags & SA_NOCLDWAIT;
    } else {
        host.handler = (uint64_t)dbo_signal_entry;
        host.flags = SA_SIGINFO | SA_ONSTACK | SA_RESTORER_FLAG |
                     (guest_actions[sig].flags & (SA_NOCLDSTOP | SA_NOCLDWAIT));
        host.restorer = (uint64_t)dbo_host_restorer;
        host.mask = ~0ull; /* the handler only sets a bit; nothing may nest */
    }
    syscall_raw(SYS_rt_sigaction, sig, (long)&host, 0, 8, 0, 0);
}

static void set_host_mask(struct guest_context *ctx, uint64_t mask)
{
    mask &= ~((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)));
    ctx->ts.sigmask = mask;
    syscall_raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0, 8, 0, 0);
}

void signals_init_thread(struct guest_context *ctx)
{
    /* The runtime's own alternate stack: host handlers never run on the
     * guest's stack. */
    if (!ctx->ts.host_altstack) /* a reused context brings its own */
        ctx->ts.host_altstack = malloc(64 * 1024);
    stack_t ss = {.ss_sp = ctx->ts.host_altstack, .ss_size = 64 * 1024};
    sigaltstack(&ss, NULL);
    set_host_mask(ctx, ctx->ts.sigmask);
}

void signals_init(void)
{
    stack_t ss = {.ss_sp = malloc(64 * 1024), .ss_size = 64 * 1024};
    sigaltstack(&ss, NULL);
    for (int sig = 1; sig <= NSIG_GUEST; sig++) {
        if (signal_is_synchronous(sig)) {
            guest_action(sig);
            install_host(sig);
        }
    }
}

void signal_die_by_default(int sig)
{
    struct kernel_sigaction dfl = {.handler = (uint64_t)SIG_DFL};
    syscall_raw(SYS_rt_sigaction, sig, (long)&dfl, 0, 8, 0, 0);
    uint64_t mask = 1ull << (sig - 1);
    syscall_raw(SYS_rt_sigprocmask, SIG_UNBLOCK, (long)&mask, 0, 8, 0, 0);
    syscall_raw(SYS_tgkill, getpid(), syscall_raw(SYS_gettid, 0, 0, 0, 0, 0, 0), sig, 0, 0, 0);
    syscall_raw(SYS_exit_group, 128 + sig, 0, 0, 0, 0, 0); /* not reached */
    __builtin_unreachable();
}

long emulate_kill(struct guest_context *ctx, long nr, long a1, long a2, long a3)
{
    long pid = getpid();
    bool to_self = false;
    long sig = 0;
    int code = SI_TKILL;
    switch (nr) {
    case SYS_kill: /* process-directed: the kernel picks this thread if it is the only one */
        to_self = a1 == pid && translator_live_threads() == 1;
        sig = a2;
        code = SI_USER;
        break;
    case SYS_tgkill:
        to_self = a1 == pid && a2 == ctx->ts.tid;
        sig = a3;
        break;
    case SYS_tkill:
        to_self = ctx->ts.tid > 0 && a1 == ctx->ts.tid;
        sig = a2;
        break;
    }
    /* A host signal to itself costs a kernel signal frame with the whole
     * vector state, a host handler and a host sigreturn on top of the
     * guest's delivery: mb-signal spent half its time there. */
    if (to_self && sig >= 1 && sig <= NSIG_GUEST && !signal_is_synchronous((int)sig) &&
        sig != SIGKILL && sig != SIGSTOP && !(ctx->ts.sigmask & (1ull << (sig - 1)))) {
        uint64_t handler = guest_action((int)sig)->handler;
        if (handler != (uint64_t)SIG_DFL && handler != (uint64_t)SIG_IGN) {
            bool merged =
                sig < SIGRTMIN &&
                (__atomic_load_n(&ctx->pending_signals, __ATOMIC_SEQ_CST) & (1ull << (sig - 1)));
            if (!merged) { /* a standard signal already pending is one */
                siginfo_t info;
                memset(&info, 0, sizeof info);
                info.si_signo = (int)sig;
                info.si_code = code;
                info.si_pid = (pid_t)pid;
                info.si_uid = getuid();
                signals_record_pending(ctx, (int)sig, &info);
            }
            return 0;
        }
    }
    return syscall_raw(nr, a1, a2, a3, 0, 0, 0);
}

long emulate_rt_sigaction(struct guest_context *ctx, int sig, const void *act, void *oact,
                          uint64_t setsize)
{
    (void)ctx;
    if (setsize != 8 || sig < 1 || sig > NSIG_GUEST)
        return -EINVAL;
    if (act && (sig == SIGKILL || sig == SIGSTOP))
        return -EINVAL;
    if ((act && !guest_vm_accessible(act, sizeof guest_actions[sig], PROT_READ)) ||
        (oact && !guest_vm_accessible(oact, sizeof guest_actions[sig], PROT_WRITE)))
        return -EFAULT;
    know_action(sig);
    pthread_mutex_lock(&actions_lock);
    if (oact)
        memcpy(oact, &guest_actions[sig], sizeof guest_actions[sig]);
    if (act) {
        memcpy(&guest_actions[sig], act, sizeof guest_actions[sig]);
        guest_actions[sig].mask &= ~((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)));
        install_host(sig);
    }
    pthread_mutex_unlock(&actions_lock);
    return 0;
}

long emulate_rt_sigprocmask(struct guest_context *ctx, int how, const uint64_t *set, uint64_t *old,
                            uint64_t setsize)
{
    if (setsize != 8)
        return -EINVAL;
    if ((set && !guest_vm_accessible(set, 8, PROT_READ)) ||
        (old && !guest_vm_accessible(old, 8, PROT_WRITE)))
        return -EFAULT;
    uint64_t cur = ctx->ts.sigmask;
    if (set) {
        uint64_t next;
        switch (how) {
        case SIG_BLOCK: next = cur | *set; break;
        case SIG_UNBLOCK: next = cur & ~*set; break;
        case SIG_SETMASK: next = *set; break;
        default: return -EINVAL;
        }
        set_host_mask(ctx, next);
    }
    if (old)
        *old = cur;
    return 0;
}

long emulate_sigaltstack(struct guest_context *ctx, const void *ss, void *old)
{
    struct {
        uint64_t sp;
        int32_t flags;
        int32_t pad;
        uint64_t size;
    } cur = {ctx->ts.altstack_sp, ctx->ts.altstack_flags, 0, ctx->ts.altstack_size};
    uint64_t rsp = ctx->gpr[GPR_RSP];
    bool on = cur.size && rsp - cur.sp < cur.size;
    if (on)
        cur.flags |= SS_ONSTACK;
    else if (!cur.size)
        cur.flags = SS_DISABLE;
    if ((ss && !guest_vm_accessible(ss, sizeof cur, PROT_READ)) ||
        (old && !guest_vm_accessible(old, sizeof cur, PROT_WRITE)))
        return -EFAULT;
    if (ss) {
        if (on)
            return -EPERM;
        typeof(cur) next;
        memcpy(&next, ss, sizeof next);
        if (next.flags & SS_DISABLE) {
            ctx->ts.altstack_sp = ctx->ts.altstack_size = 0;
            ctx->ts.altstack_flags = SS_DISABLE;
        } else {
            if (next.flags & ~(1 << 31) /* SS_AUTODISARM */)
                return -EINVAL;
            if (next.size < (uint64_t)MINSIGSTKSZ)
                return -ENOMEM;
            ctx->ts.altstack_sp = next.sp;
            ctx->ts.altstack_size = next.size;
            ctx->ts.altstack_flags = next.flags;
        }
    }
    if (old)
        memcpy(old, &cur, sizeof cur);
    return 0;
}

/* Calls the kernel never restarts, SA_RESTART or not (signal(7)). */
static bool never_restarted(long nr)
{
    switch (nr) {
    case SYS_poll:
    case SYS_ppoll:
    case SYS_select:
    case SYS_pselect6:
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
    case SYS_epoll_pwait2:
    case SYS_nanosleep:
    case SYS_clock_nanosleep:
    case SYS_pause:
    case SYS_rt_sigsuspend:
    case SYS_rt_sigtimedwait:
    case SYS_io_getevents:
    case SYS_semop:
    case SYS_semtimedop:
    case SYS_msgrcv:
    case SYS_msgsnd: return true;
    default: return false;
    }
}

/* The signal frame's FP state has the kernel's layout: a standard-format
 * XSAVE image whose reserved bytes 464..511 describe it (struct
 * _fpx_sw_bytes), followed by FP_XSTATE_MAGIC2. Handlers and sigreturn
 * see and restore every component (ymm upper halves included). */
#define FP_MAGIC1 0x46505853u
#define FP_MAGIC2 0x46505845u
enum { UC_FP_XSTATE = 1, UC_SIGCONTEXT_SS = 2, UC_STRICT_RESTORE_SS = 4 };

static uint32_t xstate_size(void)
{
    return translator_xsave_size();
}

static void write_fpstate(uint8_t *fp, struct guest_context *ctx, uint32_t size)
{
    context_fp_sync(ctx);
    memcpy(fp, ctx->xsave, size);
    uint32_t sw[12] = {FP_MAGIC1, size + 4, (uint32_t)ctx->xsave_mask,
                       (uint32_t)(ctx->xsave_mask >> 32), size};
    memcpy(fp + 464, sw, sizeof sw);
    uint32_t magic2 = FP_MAGIC2;
    memcpy(fp + size, &magic2, 4);
}

void read_fpstate(struct guest_context *ctx, const uint8_t *fp)
{
    uint32_t magic1, size = 512;
    memcpy(&magic1, fp + 464, 4);
    if (magic1 == FP_MAGIC1) {
        memcpy(&size, fp + 464 + 16, 4);
        if (size > xstate_size())
            size = xstate_size();
    }
    memcpy(ctx->xsave, fp, size);
    if (size == 512)
        ctx->xsave[512] |= 3; /* XSTATE_BV: x87 and SSE hold real data */
    context_fp_written(ctx);
}

static int next_deliverable_with(struct guest_context *ctx, uint64_t mask)
{
    uint64_t ready = ctx->pending_signals & ~mask;
    return ready ? __builtin_ctzll(ready) + 1 : 0;
}

static int next_deliverable(struct guest_context *ctx)
{
    return next_deliverable_with(ctx, ctx->ts.sigmask);
}

/* rt_sigsuspend: the guest's handler must run with the temporary mask, and
 * its frame must restore the old one (the kernel restored the host's at
 * once, so the old mask is kept aside for the frame). */
long emulate_rt_sigsuspend(struct guest_context *ctx, const uint64_t *mask, uint64_t setsize)
{
    if (setsize != 8)
        return -EINVAL;
    if (!guest_vm_accessible(mask, 8, PROT_READ))
        return -EFAULT;
    uint64_t old = ctx->ts.sigmask;
    uint64_t temp = *mask & ~((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)));
    translator_unlock();
    long r = syscall_raw(SYS_rt_sigsuspend, (long)&temp, 8, 0, 0, 0, 0);
    translator_lock();
    if (next_deliverable_with(ctx, temp)) {
        ctx->ts.sigmask = temp;
        ctx->ts.suspend_mask = old;
        ctx->ts.in_sigsuspend = 1;
    }
    return r;
}

/* Undo a sigsuspend mask that no delivery consumed. */
void signals_end_sigsuspend(struct guest_context *ctx)
{
    if (ctx->ts.in_sigsuspend) {
        ctx->ts.in_sigsuspend = 0;
        set_host_mask(ctx, ctx->ts.suspend_mask);
    }
}

bool signals_want_restart(struct guest_context *ctx, long nr)
{
    int sig = next_deliverable(ctx);
    return sig && (guest_action(sig)->flags & SA_RESTART) && !never_restarted(nr);
}

static void deliver(struct guest_context *ctx, int sig)
{
    struct kernel_sigaction *act = guest_action(sig);
    uint64_t handler = act->handler;
    if (handler == (uint64_t)SIG_IGN)
        return;
    if (handler == (uint64_t)SIG_DFL) {
        /* Changed to default after it arrived: take the default action. */
        if (signal_is_synchronous(sig) || sig == SIGABRT || sig == SIGQUIT) {
            dbo_print_stats();
            translator_flush_perf_map();
            signal_die_by_default(sig);
        }
        install_host(sig);
        syscall_raw(SYS_tgkill, getpid(), syscall_raw(SYS_gettid, 0, 0, 0, 0, 0, 0), sig, 0, 0, 0);
        return;
    }
    uint64_t sp = ctx->gpr[GPR_RSP];
    bool on_alt = ctx->ts.altstack_size && sp - ctx->ts.altstack_sp < ctx->ts.altstack_size;
    if ((act->flags & SA_ONSTACK) && ctx->ts.altstack_size && !on_alt)
        sp = ctx->ts.altstack_sp + ctx->ts.altstack_size;
    else
        sp -= 128; /* skip the red zone */
    uint32_t xsize = xstate_size();
    sp -= xsize + 4; /* the XSAVE image, then FP_XSTATE_MAGIC2 */
    sp &= ~63ull;
    uint64_t fpstate = sp;
    sp -= sizeof(siginfo_t);
    uint64_t info = sp;
    sp -= sizeof(struct kernel_ucontext);
    sp &= ~15ull;
    uint64_t ucp = sp;
    sp -= 8; /* return address: the restorer; rsp+8 is 16-aligned */

    write_fpstate((uint8_t *)fpstate, ctx, xsize);
    context_fp_reset(ctx); /* the kernel starts handlers so; sigreturn restores */
    memcpy((void *)info, ctx->siginfo[sig - 1], sizeof(siginfo_t));
    struct kernel_ucontext *uc = (struct kernel_ucontext *)ucp;
    memset(uc, 0, sizeof *uc);
    uc->uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
    uc->uc_stack.ss_sp = ctx->ts.altstack_sp;
    uc->uc_stack.ss_size = ctx->ts.altstack_size;
    uc->uc_stack.ss_flags = ctx->ts.altstack_size ? (on_alt ? SS_ONSTACK : 0) : SS_DISABLE;
    for (int r = 0; r < 16; r++)
        uc->gregs[greg_of_gpr[r]] = ctx->gpr[r];
    uc->gregs[RIP] = ctx->rip;
    uc->gregs[EFL] = ctx->rflags;
    uc->gregs[CSGSFS] = 0x33; /* user %cs */
    if (signal_is_synchronous(sig)) {
        uc->gregs[ERR] = ctx->ts.fault_err;
        uc->gregs[TRAPNO] = ctx->ts.fault_trapno;
        uc->gregs[CR2] = ctx->ts.fault_cr2;
    }
    uc->fpregs = fpstate;
    uc->uc_sigmask = ctx->ts.in_sigsuspend ? ctx->ts.suspend_mask : ctx->ts.sigmask;
    ctx->ts.in_sigsuspend = 0;
    *(uint64_t *)sp = act->restorer;

    ctx->gpr[GPR_RSP] = sp;
    ctx->gpr[GPR_RDI] = sig;
    ctx->gpr[GPR_RSI] = info;
    ctx->gpr[GPR_RDX] = ucp;
    ctx->gpr[GPR_RAX] = 0;
    ctx->rip = handler;
    ctx->rflags &= ~0x400ull; /* DF clear on handler entry, as the ABI requires */
    uint64_t mask = ctx->ts.sigmask | act->mask;
    if (!(act->flags & SA_NODEFER))
        mask |= 1ull << (sig - 1);
    if (act->flags & SA_RESETHAND) {
        act->handler = (uint64_t)SIG_DFL;
        install_host(sig);
    }
    set_host_mask(ctx, mask);
}

void signals_deliver_pending(struct guest_context *ctx)
{
    int sync = ctx->ts.sync_signal;
    if (sync) {
        /* A fault: blocked or ignored, it kills as the kernel's would. */
        ctx->ts.sync_signal = 0;
        uint64_t h = guest_action(sync)->handler;
        if ((ctx->ts.sigmask & (1ull << (sync - 1))) || h == (uint64_t)SIG_IGN ||
            h == (uint64_t)SIG_DFL) {
            dbo_print_stats();
            translator_flush_perf_map();
            signal_die_by_default(sync);
        }
        deliver(ctx, sync);
        return;
    }
    int sig = next_deliverable(ctx);
    if (!sig)
        return;
    /* The host handler may interrupt this on the same thread: atomic steps,
     * and the bit is set again if a delivery slipped in after the count. */
    uint8_t *count = &ctx->ts.pending_count[sig - 1];
    if (__atomic_load_n(count, __ATOMIC_SEQ_CST) > 0)
        __atomic_sub_fetch(count, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(count, __ATOMIC_SEQ_CST) == 0) {
        __atomic_and_fetch(&ctx->pending_signals, ~(1ull << (sig - 1)), __ATOMIC_SEQ_CST);
        if (__atomic_load_n(count, __ATOMIC_SEQ_CST) > 0)
            __atomic_or_fetch(&ctx->pending_signals, 1ull << (sig - 1), __ATOMIC_SEQ_CST);
    }
    /* Its oldest queued siginfo is the one this delivery gives. */
    uint8_t head = ctx->ts.siginfo_head[sig - 1];
    if (head != __atomic_load_n(&ctx->ts.siginfo_tail[sig - 1], __ATOMIC_ACQUIRE)) {
        memcpy(ctx->siginfo[sig - 1], ctx->siginfo_queue[sig - 1][head % SIGINFO_QUEUE],
               sizeof ctx->siginfo[sig - 1]);
        __atomic_store_n(&ctx->ts.siginfo_head[sig - 1], (uint8_t)(head + 1), __ATOMIC_RELEASE);
    }
    deliver(ctx, sig);
}

void emulate_rt_sigreturn(struct guest_context *ctx)
{
    /* The handler's `ret` popped the restorer address: rsp is at uc. */
    struct kernel_ucontext *uc = (struct kernel_ucontext *)ctx->gpr[GPR_RSP];
    for (int r = 0; r < 16; r++)
        ctx->gpr[r] = uc->gregs[greg_of_gpr[r]];
    ctx->rip = uc->gregs[RIP];
    const uint64_t user_flags = 0x40dd5; /* CF PF AF ZF SF TF DF OF AC */
    ctx->rflags = (ctx->rflags & ~user_flags) | (uc->gregs[EFL] & user_flags);
    if (uc->fpregs)
        read_fpstate(ctx, (const uint8_t *)uc->fpregs);
    set_host_mask(ctx, uc->uc_sigmask);
}
