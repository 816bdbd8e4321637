/* Signals a thread sends itself: kill, tgkill, tkill and raise, to a
 * handler, blocked then unblocked, ignored, to no handler but a default
 * that does nothing, real-time ones queued, with the siginfo the kernel
 * gives (si_code SI_USER or SI_TKILL, si_pid, si_uid), and kill to the
 * process while another thread is alive. dbo queues a signal to itself
 * without a host signal where it can: the outcome must be the kernel's. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t calls[65];
static volatile int last_code, last_pid_ok, last_uid_ok;

static void handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    calls[sig]++;
    last_code = si->si_code;
    last_pid_ok = si->si_pid == getpid();
    last_uid_ok = si->si_uid == getuid();
}

static void report(const char *what, int sig, long ret)
{
    printf("%-28s ret %ld calls %d code %s pid %d uid %d\n", what, ret, (int)calls[sig],
           last_code == SI_USER    ? "SI_USER"
           : last_code == SI_TKILL ? "SI_TKILL"
                                   : "other",
           last_pid_ok, last_uid_ok);
    last_code = 99;
    last_pid_ok = last_uid_ok = 0;
}

static int pipe_fds[2];

static void *blocked_reader(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the process's signals go to main */
    char c;
    return (void *)(long)read(pipe_fds[0], &c, 1);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGRTMIN, &sa, NULL);
    pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);

    report("kill SIGUSR1", SIGUSR1, kill(pid, SIGUSR1));
    report("tgkill SIGUSR2", SIGUSR2, syscall(SYS_tgkill, pid, tid, SIGUSR2));
    report("tkill SIGUSR1", SIGUSR1, syscall(SYS_tkill, tid, SIGUSR1));
    report("raise SIGUSR2", SIGUSR2, raise(SIGUSR2));
    printf("kill signal 0: %d\n", kill(pid, 0));
    long r = syscall(SYS_tkill, 0, SIGUSR1);
    printf("tkill tid 0: %ld %s\n", r, r < 0 && errno == EINVAL ? "EINVAL" : "?");
    r = syscall(SYS_tgkill, pid, tid, 65);
    printf("tgkill signal 65: %ld %s\n", r, r < 0 && errno == EINVAL ? "EINVAL" : "?");

    /* Blocked: a standard signal sent twice is one; real-time ones queue. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &set, &old);
    kill(pid, SIGUSR2);
    kill(pid, SIGUSR1);
    kill(pid, SIGUSR1);
    syscall(SYS_tgkill, pid, tid, SIGRTMIN);
    syscall(SYS_tgkill, pid, tid, SIGRTMIN);
    sigset_t pending;
    sigpending(&pending);
    printf("pending while blocked: USR1 %d USR2 %d RTMIN %d\n", sigismember(&pending, SIGUSR1),
           sigismember(&pending, SIGUSR2), sigismember(&pending, SIGRTMIN));
    int before1 = calls[SIGUSR1], before2 = calls[SIGUSR2], before_rt = calls[SIGRTMIN];
    sigprocmask(SIG_SETMASK, &old, NULL);
    /* (Not the order the handlers ran in: the kernel sets up every frame
     * at once, thread-directed signals first, and the last one runs first;
     * dbo delivers them one after another.) */
    printf("after unblocking: USR1 +%d USR2 +%d RTMIN +%d\n", calls[SIGUSR1] - before1,
           calls[SIGUSR2] - before2, calls[SIGRTMIN] - before_rt);

    /* Ignored, and a default that does nothing. */
    signal(SIGUSR1, SIG_IGN);
    printf("ignored: %d, calls %d\n", kill(pid, SIGUSR1), (int)calls[SIGUSR1]);
    printf("SIGCHLD default: %d\n", kill(pid, SIGCHLD));
    printf("SIGWINCH default: %d\n", (int)syscall(SYS_tgkill, pid, tid, SIGWINCH));
    sigaction(SIGUSR1, &sa, NULL);

    /* Another thread alive (blocking everything): kill goes to main all
     * the same. */
    if (pipe(pipe_fds) != 0)
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, blocked_reader, NULL);
    int before = calls[SIGUSR2];
    int ret = kill(pid, SIGUSR2);
    for (int i = 0; i < 1000000 && calls[SIGUSR2] == before; i++)
        sched_yield();
    report("kill with a second thread", SIGUSR2, ret);
    if (write(pipe_fds[1], "x", 1) != 1)
        return 1;
    pthread_join(t, NULL);
    return 0;
}
