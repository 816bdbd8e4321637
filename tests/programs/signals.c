/* Signals: the translator must deliver them with a guest-visible context
 * (guest %rip in the ucontext, precise faulting instruction), honour
 * changes the handler makes to that context, keep masks right, and deliver
 * asynchronous signals even while the guest spins in a translated loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

/* Probes with labels on the interesting instructions. */
__asm__(".text\n"
        ".globl load_probe\n"
        "load_probe:\n" /* returns *(uint64_t *)%rdi */
        ".globl load_insn\n"
        "load_insn:\n"
        "    movq (%rdi), %rax\n"
        "    ret\n"
        ".globl ill_probe\n"
        "ill_probe:\n"
        "    movl $1, %eax\n"
        ".globl ill_insn\n"
        "ill_insn:\n"
        "    ud2\n"
        ".globl ill_after\n"
        "ill_after:\n"
        "    ret\n"
        ".globl trap_probe\n"
        "trap_probe:\n"
        "    movl $2, %eax\n"
        "    int3\n"
        ".globl trap_after\n"
        "trap_after:\n"
        "    addl $40, %eax\n"
        "    ret\n"
        ".globl div_probe\n"
        "div_probe:\n" /* returns %rdi / %rsi */
        "    movq %rdi, %rax\n"
        "    cqto\n"
        ".globl div_insn\n"
        "div_insn:\n"
        "    idivq %rsi\n"
        ".globl div_after\n"
        "div_after:\n"
        "    ret\n");
uint64_t load_probe(const uint64_t *p);
int ill_probe(void);
int trap_probe(void);
long div_probe(long a, long b);
extern char load_insn[], ill_insn[], ill_after[], trap_after[], div_insn[], div_after[];

static uint64_t good_value = 0x1122334455667788ULL;
static volatile int segv_count, rip_ok, addr_ok, code_ok;
static volatile sig_atomic_t usr_count, alarm_count;
static char order[64];
static volatile int order_len;

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    (void)sig;
    segv_count++;
    rip_ok = uc->uc_mcontext.gregs[REG_RIP] == (greg_t)load_insn;
    addr_ok = si->si_addr == (void *)0x18;
    code_ok = si->si_code == SEGV_MAPERR;
    /* Retry the same instruction with a valid pointer in %rdi. */
    uc->uc_mcontext.gregs[REG_RDI] = (greg_t)&good_value;
}

static void on_ill(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    (void)sig;
    printf("SIGILL: code ILL_ILLOPN %d, rip at ud2 %d, si_addr at ud2 %d\n",
           si->si_code == ILL_ILLOPN, uc->uc_mcontext.gregs[REG_RIP] == (greg_t)ill_insn,
           si->si_addr == (void *)ill_insn);
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)ill_after;
    uc->uc_mcontext.gregs[REG_RAX] = 77;
}

static void on_trap(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    (void)sig;
    printf("SIGTRAP: code SI_KERNEL %d, rip after int3 %d\n", si->si_code == SI_KERNEL,
           uc->uc_mcontext.gregs[REG_RIP] == (greg_t)trap_after);
}

static void on_fpe(int sig, siginfo_t *si, void *ctx)
{
    ucontext_t *uc = ctx;
    (void)sig;
    printf("SIGFPE: code FPE_INTDIV %d, rip at idiv %d\n", si->si_code == FPE_INTDIV,
           uc->uc_mcontext.gregs[REG_RIP] == (greg_t)div_insn);
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)div_after;
    uc->uc_mcontext.gregs[REG_RAX] = -1;
}

static void on_usr2(int sig)
{
    (void)sig;
    order[order_len++] = 'B';
}

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    usr_count++;
    order[order_len++] = 'A';
    if (usr_count == 1) {
        sigset_t cur;
        sigprocmask(SIG_BLOCK, NULL, &cur);
        printf("SIGUSR1: signo %d, code SI_TKILL %d, pid ok %d, self blocked %d, "
               "sa_mask (SIGUSR2) blocked %d\n",
               si->si_signo == sig, si->si_code == SI_TKILL, si->si_pid == getpid(),
               sigismember(&cur, SIGUSR1), sigismember(&cur, SIGUSR2));
        raise(SIGUSR2); /* blocked by sa_mask: delivered after we return */
        order[order_len++] = 'a';
    }
}

static char altstack[1 << 16] __attribute__((aligned(16)));
static volatile int on_alt, winch_count;

static void on_winch(int sig)
{
    char local;
    (void)sig;
    winch_count++;
    on_alt = &local >= altstack && &local < altstack + sizeof altstack;
}

static void on_alarm(int sig)
{
    /* clobber vector registers: the interrupted code must not notice */
    volatile double d = 1.0001;
    for (int i = 0; i < 50; i++)
        d = d * 1.0001 + 1.0 / (d + 3.0);
    (void)sig;
    alarm_count++;
}

static void act(int sig, void (*h)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void simple(int sig, void (*h)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static double fp_work(long n)
{
    double x = 0.5, y = 1.25;
    for (long i = 0; i < n; i++) {
        x = x * 0.9999999 + y * 1e-7;
        y = y + x * 1e-9;
    }
    return x + y;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* synchronous faults with context fix-ups */
    act(SIGSEGV, on_segv, 0);
    uint64_t v = load_probe((const uint64_t *)0x18);
    printf("SIGSEGV: count %d, rip at load %d, si_addr %d, SEGV_MAPERR %d, "
           "retried load ok %d\n",
           segv_count, rip_ok, addr_ok, code_ok, v == good_value);
    act(SIGILL, on_ill, 0);
    printf("ud2 probe returned %d\n", ill_probe());
    act(SIGTRAP, on_trap, 0);
    printf("int3 probe returned %d\n", trap_probe());
    act(SIGFPE, on_fpe, 0);
    printf("idiv probe: %ld %ld\n", div_probe(100, 7), div_probe(5, 0));

    /* masks, nesting and ordering */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, NULL);
    simple(SIGUSR2, on_usr2, 0);
    raise(SIGUSR1);
    order[order_len] = 0;
    printf("order after raise: %s\n", order);

    sigset_t block, pend;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, NULL);
    kill(getpid(), SIGUSR1);
    sigpending(&pend);
    printf("pending while blocked: %d, delivered: %d\n", sigismember(&pend, SIGUSR1),
           usr_count - 1);
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    printf("after unblock delivered: %d\n", usr_count - 1);

    sigprocmask(SIG_BLOCK, &block, NULL);
    raise(SIGUSR1);
    siginfo_t si;
    struct timespec ts = {1, 0};
    int got = sigtimedwait(&block, &si, &ts);
    printf("sigtimedwait: %s, handler ran: %d\n", got == SIGUSR1 ? "SIGUSR1" : "other",
           usr_count - 2);
    sigprocmask(SIG_UNBLOCK, &block, NULL);

    /* alternate signal stack */
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    simple(SIGWINCH, on_winch, SA_ONSTACK);
    raise(SIGWINCH);
    printf("handler ran on altstack: %d\n", on_alt);

    /* SA_RESETHAND: second SIGWINCH hits the default action (ignore) */
    simple(SIGWINCH, on_winch, SA_RESETHAND);
    raise(SIGWINCH);
    int first = winch_count;
    raise(SIGWINCH);
    printf("resethand: handler calls %d then %d\n", first, winch_count);

    /* asynchronous: a timer must interrupt a tight translated loop */
    simple(SIGALRM, on_alarm, SA_RESTART);
    struct itimerval it = {{0, 2000}, {0, 2000}};
    setitimer(ITIMER_REAL, &it, NULL);
    unsigned long spins = 0;
    while (alarm_count < 5)
        spins++;
    /* and must not disturb floating-point state while it does */
    int before = alarm_count;
    double with = fp_work(30000000);
    int during = alarm_count - before;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    double without = fp_work(30000000);
    printf("5 alarms interrupted the spin loop: %d\n", spins > 0);
    printf("alarms during fp work: %d; fp result %.17g, same as without: %d\n", during > 0, with,
           with == without);

    /* a signal without SA_RESTART interrupts a blocking read with EINTR */
    simple(SIGALRM, on_alarm, 0);
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    struct itimerval once = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &once, NULL);
    char buf[4];
    ssize_t n = read(fds[0], buf, sizeof buf);
    printf("blocking read: %zd, EINTR %d\n", n, n < 0 && errno == EINTR);
    return 0;
}
