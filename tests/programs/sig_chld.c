/* SIGCHLD: a handler that reaps with waitpid(WNOHANG) while the parent
 * waits in sigsuspend, siginfo of exits, kills, stops and continues
 * (waitpid WUNTRACED/WCONTINUED, waitid), SA_NOCLDSTOP, and automatic
 * reaping with SIGCHLD ignored or SA_NOCLDWAIT. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KIDS 6

static volatile int reaped, chld_signals, bad_info;
static int statuses[KIDS];
static pid_t kids[KIDS];

static void on_chld(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    int e = errno;
    chld_signals++;
    /* SIGCHLD does not queue: which child's siginfo arrives depends on
     * timing, but it must be one of ours, with a code for an ending */
    int ours = 0;
    for (int i = 0; i < KIDS; i++)
        ours |= si->si_pid == kids[i];
    if (!ours || si->si_code < CLD_EXITED || si->si_code > CLD_DUMPED)
        bad_info++;
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p <= 0)
            break;
        for (int i = 0; i < KIDS; i++)
            if (kids[i] == p)
                statuses[i] = st;
        reaped++;
    }
    errno = e;
}

static void describe(const char *what, int st)
{
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d%s\n", what, WTERMSIG(st), WCOREDUMP(st) ? " (core)" : "");
    else if (WIFSTOPPED(st))
        printf("%s: stopped by signal %d\n", what, WSTOPSIG(st));
    else if (WIFCONTINUED(st))
        printf("%s: continued\n", what);
    else
        printf("%s: status %#x\n", what, st);
}

static void set_chld(void (*h)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
}

static void reaping_handler(void)
{
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    set_chld(on_chld, SA_RESTART);
    sigprocmask(SIG_BLOCK, &chld, &old);
    for (int i = 0; i < KIDS; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            struct timespec ts = {0, (KIDS - i) * 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
            if (i == 4)
                raise(SIGTERM);
            if (i == 5) {
                struct rlimit no_core = {0, 0};
                setrlimit(RLIMIT_CORE, &no_core);
                abort();
            }
            _exit(10 + i);
        }
    }
    sigset_t wait_mask = old;
    sigdelset(&wait_mask, SIGCHLD);
    while (reaped < KIDS)
        sigsuspend(&wait_mask);
    sigprocmask(SIG_SETMASK, &old, NULL);
    for (int i = 0; i < KIDS; i++) {
        char what[32];
        snprintf(what, sizeof what, "child %d", i);
        describe(what, statuses[i]);
    }
    printf("SIGCHLD handler: at least one signal %d, at most one per child %d, "
           "siginfo not from an ended child of ours %d\n",
           chld_signals >= 1, chld_signals <= KIDS, bad_info);
    errno = 0;
    pid_t none = waitpid(-1, NULL, WNOHANG);
    printf("nothing left to wait for: %d ECHILD %d\n", none, errno == ECHILD);
}

static volatile int stop_signals, cont_signals;
static void on_chld_count(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    if (si->si_code == CLD_STOPPED)
        stop_signals++;
    if (si->si_code == CLD_CONTINUED)
        cont_signals++;
}

static void stop_and_continue(int flags)
{
    stop_signals = cont_signals = 0;
    set_chld(on_chld_count, flags);
    int go[2];
    if (pipe(go) != 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        raise(SIGSTOP);
        char c;
        /* exit only once the parent has seen the continue, or waitpid
         * could report the exit instead */
        if (read(go[0], &c, 1) != 1)
            _exit(1);
        _exit(3);
    }
    int st;
    waitpid(pid, &st, WUNTRACED);
    describe("  waitpid WUNTRACED", st);
    kill(pid, SIGCONT);
    waitpid(pid, &st, WCONTINUED);
    describe("  waitpid WCONTINUED", st);
    if (write(go[1], "x", 1) != 1)
        exit(1);
    close(go[0]);
    close(go[1]);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, pid, &si, WEXITED);
    printf("  waitid: pid ok %d, CLD_EXITED %d, status %d\n", si.si_pid == pid,
           si.si_code == CLD_EXITED, si.si_status);
    /* the SIGCHLD for the stop and the continue arrive asynchronously */
    struct timespec ts = {0, 1000 * 1000};
    for (int i = 0; i < 200 && !(flags & SA_NOCLDSTOP) && (!stop_signals || !cont_signals); i++)
        nanosleep(&ts, NULL);
    printf("  SIGCHLD for stop %d, for continue %d\n", stop_signals > 0, cont_signals > 0);
}

static void auto_reap(const char *how)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(1);
    errno = 0;
    int st;
    pid_t r = waitpid(pid, &st, 0); /* blocks until the child is gone */
    printf("%s: waitpid %d ECHILD %d\n", how, r == pid ? 1 : r, errno == ECHILD);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* children share the stdout fd */
    reaping_handler();
    printf("stop and continue, SIGCHLD for both:\n");
    stop_and_continue(SA_RESTART);
    printf("stop and continue, SA_NOCLDSTOP:\n");
    stop_and_continue(SA_RESTART | SA_NOCLDSTOP);

    signal(SIGCHLD, SIG_IGN);
    auto_reap("SIGCHLD ignored");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = SA_NOCLDWAIT;
    sigaction(SIGCHLD, &sa, NULL);
    auto_reap("SA_NOCLDWAIT");
    signal(SIGCHLD, SIG_DFL);
    auto_reap("default");
    return 0;
}
