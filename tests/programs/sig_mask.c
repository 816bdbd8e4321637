/* Masks and waiting: sigprocmask and pthread_sigmask, sigpending for the
 * thread and the process, sigsuspend, sigtimedwait/sigwaitinfo (with
 * standard signals coalescing and real-time ones queueing in order),
 * signalfd, siglongjmp out of handlers (also out of a SIGSEGV), and masks,
 * dispositions and pending signals across fork and execve. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int usr1_calls, usr2_calls;
static volatile pthread_t usr2_thread;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_calls++;
}
static void on_usr2(int sig)
{
    (void)sig;
    usr2_calls++;
    usr2_thread = pthread_self();
}

static void set_handler(int sig, void (*h)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static sigset_t just(int sig)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    return s;
}

static int pending(int sig)
{
    sigset_t p;
    sigpending(&p);
    return sigismember(&p, sig);
}

static int blocked(int sig)
{
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    return sigismember(&cur, sig);
}

static void masks(void)
{
    sigset_t s = just(SIGUSR1), old;
    set_handler(SIGUSR1, on_usr1);
    sigprocmask(SIG_BLOCK, &s, &old);
    printf("block: was blocked %d, now %d\n", sigismember(&old, SIGUSR1), blocked(SIGUSR1));
    raise(SIGUSR1);
    raise(SIGUSR1); /* coalesces with the first */
    kill(getpid(), SIGUSR1);
    printf("while blocked: pending %d, handler calls %d\n", pending(SIGUSR1), usr1_calls);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("after unblock: pending %d, handler calls %d\n", pending(SIGUSR1), usr1_calls);

    /* SIG_IGN discards a pending signal */
    sigprocmask(SIG_BLOCK, &s, NULL);
    raise(SIGUSR1);
    signal(SIGUSR1, SIG_IGN);
    printf("ignored while pending: pending now %d\n", pending(SIGUSR1));
    set_handler(SIGUSR1, on_usr1);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    printf("handler calls still %d\n", usr1_calls);

    /* SIGKILL and SIGSTOP cannot be blocked */
    sigset_t all, now;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("fill mask: SIGKILL blocked %d, SIGSTOP blocked %d, SIGTERM blocked %d\n",
           sigismember(&now, SIGKILL), sigismember(&now, SIGSTOP), sigismember(&now, SIGTERM));
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = 0;
    int r = sigprocmask(99, &s, NULL);
    printf("bad how: %d EINVAL %d\n", r, errno == EINVAL);
}

/* a thread with its own mask: thread-directed signals pend for it only */
static pthread_barrier_t bar;
static volatile int thread_saw_pending, thread_calls_before, thread_calls_after;
static void *masked_thread(void *arg)
{
    (void)arg;
    sigset_t s = just(SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    pthread_barrier_wait(&bar); /* 1: mask set */
    pthread_barrier_wait(&bar); /* 2: main has sent the signal */
    thread_saw_pending = pending(SIGUSR2);
    thread_calls_before = usr2_calls;
    pthread_sigmask(SIG_UNBLOCK, &s, NULL); /* delivered here, in this thread */
    thread_calls_after = usr2_calls;
    return NULL;
}

static void thread_masks(void)
{
    set_handler(SIGUSR2, on_usr2);
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, masked_thread, NULL);
    pthread_barrier_wait(&bar);
    pthread_kill(t, SIGUSR2);
    int main_sees = pending(SIGUSR2);
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    printf("thread mask: thread saw pending %d, main saw pending %d, calls %d -> %d, ran in thread "
           "%d\n",
           thread_saw_pending, main_sees, thread_calls_before, thread_calls_after,
           pthread_equal(usr2_thread, t));
    pthread_barrier_destroy(&bar);

    /* a new thread inherits its creator's mask */
    sigset_t s = just(SIGUSR1), old;
    pthread_sigmask(SIG_BLOCK, &s, &old);
    pthread_create(&t, NULL, (void *(*)(void *))(void *)blocked, (void *)(long)SIGUSR1);
    void *r;
    pthread_join(t, &r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    printf("new thread inherits the mask: %d\n", (int)(long)r);
}

static void *send_later(void *arg)
{
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    pthread_kill(*(pthread_t *)arg, SIGUSR1);
    return NULL;
}

static void suspend(void)
{
    sigset_t s = just(SIGUSR1), old, wait_mask;
    set_handler(SIGUSR1, on_usr1);
    sigprocmask(SIG_BLOCK, &s, &old);

    /* already pending: sigsuspend returns at once */
    raise(SIGUSR1);
    int before = usr1_calls;
    wait_mask = old;
    sigdelset(&wait_mask, SIGUSR1);
    int r = sigsuspend(&wait_mask);
    printf("sigsuspend (pending): %d EINTR %d, calls +%d, blocked again after %d\n", r,
           errno == EINTR, usr1_calls - before, blocked(SIGUSR1));

    /* really waiting: another thread sends it 20 ms later */
    pthread_t self = pthread_self(), t;
    pthread_create(&t, NULL, send_later, &self);
    before = usr1_calls;
    r = sigsuspend(&wait_mask);
    printf("sigsuspend (waiting): %d EINTR %d, calls +%d, blocked again after %d\n", r,
           errno == EINTR, usr1_calls - before, blocked(SIGUSR1));
    pthread_join(t, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void timedwait(void)
{
    sigset_t s = just(SIGUSR1), old;
    sigprocmask(SIG_BLOCK, &s, &old);
    siginfo_t si;
    struct timespec ts = {0, 10 * 1000 * 1000};

    int calls = usr1_calls;
    kill(getpid(), SIGUSR1);
    int r = sigtimedwait(&s, &si, &ts);
    printf("sigtimedwait: %s, SI_USER %d, pid ok %d, handler calls +%d\n",
           r == SIGUSR1 ? "SIGUSR1" : "?", si.si_code == SI_USER, si.si_pid == getpid(),
           usr1_calls - calls);
    errno = 0;
    r = sigtimedwait(&s, &si, &ts);
    printf("sigtimedwait with nothing pending: %d EAGAIN %d\n", r, errno == EAGAIN);

    /* real-time signals queue, with their values, lowest number first */
    sigset_t rt;
    sigemptyset(&rt);
    sigaddset(&rt, SIGRTMIN);
    sigaddset(&rt, SIGRTMIN + 1);
    sigprocmask(SIG_BLOCK, &rt, NULL);
    for (int i = 1; i <= 3; i++) {
        sigqueue(getpid(), SIGRTMIN + 1, (union sigval){.sival_int = 10 + i});
        sigqueue(getpid(), SIGRTMIN, (union sigval){.sival_int = i});
    }
    printf("sigwaitinfo order:");
    for (int i = 0; i < 6; i++) {
        r = sigwaitinfo(&rt, &si);
        printf(" RTMIN+%d:%d", r - SIGRTMIN, si.si_value.sival_int);
    }
    printf("\n");
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void with_signalfd(void)
{
    sigset_t s = just(SIGUSR2), old;
    sigprocmask(SIG_BLOCK, &s, &old);
    int fd = signalfd(-1, &s, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) {
        perror("signalfd");
        return;
    }
    struct signalfd_siginfo fi;
    ssize_t n = read(fd, &fi, sizeof fi);
    printf("signalfd empty: %zd EAGAIN %d\n", n, errno == EAGAIN);
    sigqueue(getpid(), SIGUSR2, (union sigval){.sival_int = 77});
    struct pollfd p = {fd, POLLIN, 0};
    int pr = poll(&p, 1, 1000);
    n = read(fd, &fi, sizeof fi);
    printf("signalfd: poll %d, read %zd, signo SIGUSR2 %d, SI_QUEUE %d, value %d, pid ok %d\n", pr,
           n, fi.ssi_signo == SIGUSR2, fi.ssi_code == SI_QUEUE, fi.ssi_int,
           fi.ssi_pid == (unsigned)getpid());

    /* from another thread, to this (the reading) thread */
    pthread_t self = pthread_self(), t;
    int fd2 = signalfd(-1, &s, SFD_CLOEXEC);
    sigset_t s1 = just(SIGUSR1);
    sigprocmask(SIG_BLOCK, &s1, NULL);
    signalfd(fd2, &s1, 0); /* retarget the same fd at SIGUSR1 */
    int calls = usr1_calls;
    pthread_create(&t, NULL, send_later, &self);
    n = read(fd2, &fi, sizeof fi);
    printf("signalfd blocking read: %zd, signo SIGUSR1 %d, SI_TKILL %d, handler calls +%d\n", n,
           fi.ssi_signo == SIGUSR1, fi.ssi_code == SI_TKILL, usr1_calls - calls);
    pthread_join(t, NULL);
    close(fd);
    close(fd2);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static sigjmp_buf jb;
static volatile int jumps;
static void jump_out(int sig)
{
    jumps++;
    siglongjmp(jb, sig);
}

static void longjumps(void)
{
    set_handler(SIGUSR1, jump_out);
    int r = sigsetjmp(jb, 1);
    if (r == 0) {
        raise(SIGUSR1);
        printf("not reached\n");
    }
    printf("siglongjmp (savemask 1): from signal %d, SIGUSR1 blocked after %d\n", r,
           blocked(SIGUSR1));

    r = sigsetjmp(jb, 0);
    if (r == 0) {
        raise(SIGUSR1);
        printf("not reached\n");
    }
    printf("siglongjmp (savemask 0): from signal %d, SIGUSR1 blocked after %d\n", r,
           blocked(SIGUSR1));
    sigset_t s = just(SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &s, NULL);

    /* out of a synchronous fault, twice */
    set_handler(SIGSEGV, jump_out);
    for (volatile int i = 0; i < 2; i++) {
        volatile int *bad = (volatile int *)(uintptr_t)(16 + i * 8);
        r = sigsetjmp(jb, 1);
        if (r == 0) {
            *bad = 1;
            printf("not reached\n");
        }
        printf("siglongjmp out of SIGSEGV: signal %d, SIGSEGV blocked after %d\n", r,
               blocked(SIGSEGV));
    }
    printf("jumps %d\n", jumps);
    signal(SIGSEGV, SIG_DFL);
}

/* masks, ignored signals and pending ones survive execve; the handler
 * does not (it becomes SIG_DFL) */
static void report_image(void)
{
    struct sigaction usr1, term;
    sigaction(SIGUSR1, NULL, &usr1);
    sigaction(SIGTERM, NULL, &term);
    printf("exec'd image: SIGUSR2 blocked %d pending %d, SIGUSR1 handler reset %d, "
           "SIGTERM still ignored %d, SIGINT blocked %d\n",
           blocked(SIGUSR2), pending(SIGUSR2), usr1.sa_handler == SIG_DFL,
           term.sa_handler == SIG_IGN, blocked(SIGINT));
}

static void across_fork_exec(const char *self)
{
    set_handler(SIGUSR1, on_usr1);
    signal(SIGTERM, SIG_IGN);
    sigset_t s = just(SIGUSR2), old;
    sigprocmask(SIG_BLOCK, &s, &old);
    raise(SIGUSR2);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        printf("forked child: SIGUSR2 blocked %d, pending %d (pending is not inherited)\n",
               blocked(SIGUSR2), pending(SIGUSR2));
        raise(SIGUSR2);
        fflush(stdout);
        execl(self, self, "--report", (char *)NULL);
        perror("execl");
        _exit(1);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    sigtimedwait(&s, NULL, &(struct timespec){0, 0}); /* drop ours */
    sigprocmask(SIG_SETMASK, &old, NULL);
    signal(SIGTERM, SIG_DFL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--report") == 0) {
        report_image();
        return 0;
    }
    masks();
    thread_masks();
    suspend();
    timedwait();
    with_signalfd();
    longjumps();
    across_fork_exec(argv[0]);
    return 0;
}
