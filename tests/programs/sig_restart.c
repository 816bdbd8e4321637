/* Handler flags: SA_RESTART against EINTR on blocking reads and writes of
 * a pipe (timers from setitimer, ualarm, timer_create), calls that are
 * never restarted (nanosleep), SA_NODEFER nesting, SA_RESETHAND (the second
 * signal takes the default action, checked in a forked child), alarm(). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int fds[2];
static volatile sig_atomic_t alarms, wake_after, drain_after;
static volatile int last_code, last_value;

static void on_alarm(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    int e = errno;
    alarms++;
    last_code = si->si_code;
    if (si->si_code == SI_TIMER)
        last_value = si->si_value.sival_int;
    if (alarms == wake_after) { /* unblock the reader, stop the timer */
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        if (write(fds[1], "x", 1) != 1)
            _exit(90);
    }
    if (alarms == drain_after) { /* make room for the blocked writer */
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        char buf[4096];
        if (read(fds[0], buf, sizeof buf) <= 0)
            _exit(91);
    }
    errno = e;
}

static void handle(int sig, void (*h)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0)
        exit(2);
}

static void arm(long first_us, long every_us)
{
    struct itimerval it = {{0, every_us}, {0, first_us}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static const char *code_name(int c)
{
    switch (c) {
    case SI_KERNEL: return "SI_KERNEL";
    case SI_TIMER: return "SI_TIMER";
    case SI_USER: return "SI_USER";
    case SI_TKILL: return "SI_TKILL";
    case SI_QUEUE: return "SI_QUEUE";
    default: return "other";
    }
}

static void restart_read(void)
{
    char c = 0;
    ssize_t n;

    /* SA_RESTART: three alarms interrupt the read, which restarts each time,
     * until the third handler writes a byte */
    handle(SIGALRM, on_alarm, SA_RESTART);
    alarms = 0, wake_after = 3, drain_after = -1;
    arm(5000, 5000);
    n = read(fds[0], &c, 1);
    printf("SA_RESTART read: %zd '%c' after %s alarms (%s)\n", n, c,
           alarms >= 3 ? "at least 3" : "fewer than 3", code_name(last_code));

    /* no SA_RESTART: the first alarm ends the read with EINTR */
    handle(SIGALRM, on_alarm, 0);
    alarms = 0, wake_after = -1;
    arm(5000, 0);
    errno = 0;
    n = read(fds[0], &c, 1);
    printf("plain read: %zd EINTR %d after %d alarm\n", n, errno == EINTR, alarms);

    /* ualarm is setitimer underneath */
    handle(SIGALRM, on_alarm, 0);
    alarms = 0;
    ualarm(5000, 0);
    errno = 0;
    n = read(fds[0], &c, 1);
    printf("read under ualarm: %zd EINTR %d after %d alarm\n", n, errno == EINTR, alarms);
}

static void restart_write(void)
{
    /* fill the pipe, then a blocking write waits for room */
    int fl = fcntl(fds[1], F_GETFL);
    fcntl(fds[1], F_SETFL, fl | O_NONBLOCK);
    char block[4096];
    memset(block, 'y', sizeof block);
    long filled = 0;
    for (;;) {
        ssize_t w = write(fds[1], block, sizeof block);
        if (w <= 0)
            break;
        filled += w;
    }
    fcntl(fds[1], F_SETFL, fl);
    handle(SIGALRM, on_alarm, SA_RESTART);
    alarms = 0, wake_after = -1, drain_after = 2;
    arm(5000, 5000);
    ssize_t w = write(fds[1], block, 100);
    /* a third alarm may come while the second's handler stops the timer
     * (on a loaded machine, natively too): only "at least 2" is certain */
    printf("SA_RESTART write into a full pipe (%ld bytes): %zd after %s alarms\n", filled, w,
           alarms >= 2 ? "at least 2" : "fewer than 2");

    /* without SA_RESTART it fails with EINTR and writes nothing */
    handle(SIGALRM, on_alarm, 0);
    fcntl(fds[1], F_SETFL, fl | O_NONBLOCK);
    while (write(fds[1], block, sizeof block) > 0)
        ;
    while (write(fds[1], block, 1) > 0) /* the last bytes of room */
        ;
    fcntl(fds[1], F_SETFL, fl);
    alarms = 0, drain_after = -1;
    arm(5000, 0);
    errno = 0;
    w = write(fds[1], block, 100);
    printf("plain write into a full pipe: %zd EINTR %d after %d alarm\n", w, errno == EINTR,
           alarms);

    /* empty it again */
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    while (read(fds[0], block, sizeof block) > 0)
        ;
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) & ~O_NONBLOCK);
}

static void never_restarted(void)
{
    handle(SIGALRM, on_alarm, SA_RESTART);
    alarms = 0, wake_after = -1, drain_after = -1;
    arm(5000, 0);
    struct timespec req = {5, 0}, rem = {0, 0};
    errno = 0;
    int r = nanosleep(&req, &rem);
    printf("nanosleep with SA_RESTART: %d EINTR %d, time left %d\n", r, errno == EINTR,
           rem.tv_sec >= 4);

    /* a POSIX timer carries its sigev_value */
    timer_t tm;
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGALRM;
    ev.sigev_value.sival_int = 4242;
    if (timer_create(CLOCK_MONOTONIC, &ev, &tm) != 0) {
        perror("timer_create");
        return;
    }
    struct itimerspec its = {{0, 0}, {0, 5000000}};
    handle(SIGALRM, on_alarm, SA_RESTART);
    alarms = 0, wake_after = 1;
    timer_settime(tm, 0, &its, NULL);
    char c;
    ssize_t n = read(fds[0], &c, 1);
    printf("timer_create: read %zd after %d signal, %s, value %d\n", n, alarms,
           code_name(last_code), last_value);
    timer_delete(tm);

    /* alarm() reports the seconds left of the previous one */
    unsigned a1 = alarm(30);
    unsigned a2 = alarm(0);
    printf("alarm: %u then %u\n", a1, a2);
}

/* SA_NODEFER: the handler can be re-entered by its own signal */
static char trace[64];
static volatile int trace_len, depth, calls;
static void on_usr2(int sig)
{
    int me = ++depth;
    trace[trace_len++] = '(';
    trace[trace_len++] = (char)('0' + me);
    if (++calls == 1)
        raise(sig);
    trace[trace_len++] = ')';
    depth--;
}

static void nodefer(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGUSR2, &sa, NULL);
    trace_len = 0, calls = 0;
    raise(SIGUSR2);
    trace[trace_len] = 0;
    printf("SA_NODEFER: %s\n", trace);
    sa.sa_flags = 0;
    sigaction(SIGUSR2, &sa, NULL);
    trace_len = 0, calls = 0;
    raise(SIGUSR2);
    trace[trace_len] = 0;
    printf("deferred:   %s\n", trace);
}

/* SA_RESETHAND: one call, then the default action */
static volatile int reset_calls, blocked_inside;
static void on_reset(int sig)
{
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    blocked_inside = sigismember(&cur, sig);
    reset_calls++;
}

static void resethand(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction sa, now;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_reset;
        sa.sa_flags = SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR1, &sa, NULL);
        raise(SIGUSR1);
        sigaction(SIGUSR1, NULL, &now);
        printf("SA_RESETHAND: %d call, blocked inside %d, disposition now SIG_DFL %d\n",
               reset_calls, blocked_inside, now.sa_handler == SIG_DFL);
        fflush(stdout);
        raise(SIGUSR1); /* default action: terminate */
        printf("survived the second SIGUSR1\n");
        exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child after the second SIGUSR1: %s %d\n",
           WIFSIGNALED(st) ? "killed by signal" : "exited",
           WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

int main(void)
{
    if (pipe(fds) != 0)
        return 1;
    restart_read();
    restart_write();
    never_restarted();
    nodefer();
    resethand();
    return 0;
}
