/* A signal storm against a multithreaded program. Eight workers spin in
 * tight loops without system calls, doing integer and floating-point work
 * whose exact results are known in advance, while the main thread sends
 * thousands of SIGUSR1 at them with pthread_kill, tgkill, pthread_sigqueue
 * and kill. The handler clobbers SSE and x87 state. A translator must
 * interrupt translated loops, deliver each thread-directed signal in its
 * target thread, and save and restore the full register state. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WORKERS 8
#define ROUND_TRIPS 25 /* per worker, each waited for */
#define STORM 4000

static __thread int my_index = -1; /* -1: the main thread */
static pid_t tids[WORKERS];
static pthread_t threads[WORKERS];
static volatile int started[WORKERS];
static volatile int stop;
static volatile int hold[WORKERS], parked[WORKERS];
static sem_t go[WORKERS];
static volatile int expected_target = -1;

static unsigned long hits[WORKERS], tkill_hits[WORKERS], user_hits[WORKERS], queue_hits[WORKERS];
static unsigned long main_hits, wrong_thread, wrong_value, wrong_pid;
static volatile double handler_sink;

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    int saved_errno = errno;
    int i = my_index;
    /* clobber SSE and x87 state: the interrupted loop must not notice */
    double d = si->si_code + 1.5;
    long double l = 1.0L / (i + 3);
    for (int k = 0; k < 20; k++) {
        d = sqrt(d * 3.7 + k);
        l = l * 1.0001L + 0.5L;
    }
    handler_sink = d + (double)l;
    if (i < 0) {
        __atomic_add_fetch(&main_hits, 1, __ATOMIC_RELAXED);
        errno = saved_errno;
        return;
    }
    switch (si->si_code) {
    case SI_TKILL:
        if (expected_target >= 0 && expected_target != i)
            __atomic_add_fetch(&wrong_thread, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&tkill_hits[i], 1, __ATOMIC_RELAXED);
        break;
    case SI_USER: __atomic_add_fetch(&user_hits[i], 1, __ATOMIC_RELAXED); break;
    case SI_QUEUE:
        if (si->si_value.sival_int != i)
            __atomic_add_fetch(&wrong_value, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&queue_hits[i], 1, __ATOMIC_RELAXED);
        break;
    }
    if (si->si_pid != getpid())
        __atomic_add_fetch(&wrong_pid, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&hits[i], 1, __ATOMIC_RELEASE);
    errno = saved_errno;
}

/* The work: one round, no system calls. */
struct result {
    double fp;
    long double x87;
    uint64_t hash;
};

static struct result __attribute__((noinline)) one_round(int i)
{
    struct result r = {0.25 + i, 1.0L, 1469598103934665603ULL};
    double y = 1.0;
    for (int k = 1; k <= 10000; k++) {
        r.fp = r.fp * 0.999999 + sqrt((double)k) / (k + i);
        y = fma(y, 1.0000001, 1e-9 * k);
        r.x87 = r.x87 * 1.00000001L + 1.0L / k;
        r.hash = (r.hash ^ (uint64_t)(k * (i + 1))) * 1099511628211ULL;
    }
    r.fp += y;
    return r;
}

static struct result expected[WORKERS];
static unsigned long rounds[WORKERS], bad_rounds[WORKERS];

static void *worker(void *arg)
{
    int i = (int)(uintptr_t)arg;
    my_index = i;
    tids[i] = (pid_t)syscall(SYS_gettid);
    __atomic_store_n(&started[i], 1, __ATOMIC_RELEASE);
    for (;;) {
        if (hold[i]) { /* parked until main lets this one spin */
            parked[i] = 1;
            while (sem_wait(&go[i]) != 0)
                ;
            parked[i] = 0;
            continue;
        }
        if (stop)
            break;
        struct result r = one_round(i);
        if (r.fp != expected[i].fp || r.x87 != expected[i].x87 || r.hash != expected[i].hash)
            bad_rounds[i]++;
        __atomic_add_fetch(&rounds[i], 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static int sys_tgkill(pid_t pid, pid_t tid, int sig)
{
    return (int)syscall(SYS_tgkill, pid, tid, sig);
}

static void wait_for_hit(int t, unsigned long before)
{
    while (__atomic_load_n(&hits[t], __ATOMIC_ACQUIRE) == before)
        sched_yield();
}

int main(void)
{
    for (int i = 0; i < WORKERS; i++)
        expected[i] = one_round(i); /* undisturbed, before any signal */

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);

    for (int i = 0; i < WORKERS; i++) {
        hold[i] = 1;
        sem_init(&go[i], 0, 0);
        if (pthread_create(&threads[i], NULL, worker, (void *)(uintptr_t)i) != 0)
            return 1;
    }
    /* the main thread blocks SIGUSR1 (workers inherited it unblocked), so
     * kill() to the process can only land in a worker */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    for (int i = 0; i < WORKERS; i++)
        while (!__atomic_load_n(&started[i], __ATOMIC_ACQUIRE))
            sched_yield();
    pid_t pid = getpid();

    /* 1: one worker spinning at a time (the others parked in sem_wait), one
     * signal at a time, each waited for: every tgkill and pthread_kill lands
     * in its target while it runs translated code */
    for (int t = 0; t < WORKERS; t++) {
        while (!parked[t])
            sched_yield();
        hold[t] = 0;
        sem_post(&go[t]);
        while (parked[t])
            sched_yield();
        for (int r = 0; r < ROUND_TRIPS; r++) {
            unsigned long before = __atomic_load_n(&hits[t], __ATOMIC_ACQUIRE);
            expected_target = t;
            if (r % 2)
                pthread_kill(threads[t], SIGUSR1);
            else
                sys_tgkill(pid, tids[t], SIGUSR1);
            wait_for_hit(t, before);
        }
        expected_target = -1;
        hold[t] = 1;
    }
    unsigned long exact = 0;
    int all_exact = 1;
    for (int t = 0; t < WORKERS; t++) {
        exact += hits[t];
        all_exact &= hits[t] == ROUND_TRIPS && tkill_hits[t] == ROUND_TRIPS;
    }
    printf("round trips: %lu delivered, %d per worker in its own thread: %d, wrong thread %lu\n",
           exact, ROUND_TRIPS, all_exact, wrong_thread);

    /* 2: the storm against all eight spinning at once, nothing waited for;
     * standard signals coalesce, so only bounds are deterministic */
    for (int t = 0; t < WORKERS; t++) {
        while (!parked[t])
            sched_yield();
        hold[t] = 0;
        sem_post(&go[t]);
    }
    for (int t = 0; t < WORKERS; t++)
        while (parked[t])
            sched_yield();
    unsigned long before_storm[WORKERS];
    for (int t = 0; t < WORKERS; t++)
        before_storm[t] = hits[t];
    int sent_kill = 0, sent_tkill = 0, sent_queue = 0;
    for (int n = 0; n < STORM; n++) {
        int t = n % WORKERS;
        switch (n % 4) {
        case 0:
            pthread_kill(threads[t], SIGUSR1);
            sent_tkill++;
            break;
        case 1:
            sys_tgkill(pid, tids[t], SIGUSR1);
            sent_tkill++;
            break;
        case 2:
            pthread_sigqueue(threads[t], SIGUSR1, (union sigval){.sival_int = t});
            sent_queue++;
            break;
        case 3:
            kill(pid, SIGUSR1);
            sent_kill++;
            break;
        }
    }
    /* flush: one more waited-for signal per worker consumes anything still
     * pending for it; the process-wide one shows in the main thread's
     * sigpending until some worker takes it */
    unsigned long before_flush[WORKERS];
    for (int t = 0; t < WORKERS; t++) {
        before_flush[t] = __atomic_load_n(&hits[t], __ATOMIC_ACQUIRE);
        sys_tgkill(pid, tids[t], SIGUSR1);
    }
    for (int t = 0; t < WORKERS; t++)
        wait_for_hit(t, before_flush[t]);
    for (;;) {
        sigset_t pend;
        sigpending(&pend);
        if (!sigismember(&pend, SIGUSR1))
            break;
        sched_yield();
    }
    unsigned long storm_hits = 0, user = 0, queue = 0;
    int each = 1;
    for (int t = 0; t < WORKERS; t++) {
        storm_hits += hits[t] - before_storm[t];
        user += user_hits[t];
        queue += queue_hits[t];
        each &= hits[t] - before_storm[t] >= 1; /* may have merged with the flush */
    }
    printf("storm: sent %d thread-directed, %d queued, %d to the process\n", sent_tkill, sent_queue,
           sent_kill);
    printf("storm: every worker hit: %d, handled at most sent: %d, process-directed delivered: %d, "
           "queued delivered: %d\n",
           each, storm_hits <= (unsigned long)STORM + WORKERS, user >= 1, queue >= 1);
    printf("storm: wrong thread %lu, wrong sigqueue value %lu, wrong si_pid %lu, in main %lu\n",
           wrong_thread, wrong_value, wrong_pid, main_hits);

    /* let every worker finish a few more rounds, then stop them */
    unsigned long rounds_now[WORKERS];
    for (int t = 0; t < WORKERS; t++)
        rounds_now[t] = __atomic_load_n(&rounds[t], __ATOMIC_RELAXED);
    for (int t = 0; t < WORKERS; t++)
        while (__atomic_load_n(&rounds[t], __ATOMIC_RELAXED) < rounds_now[t] + 2)
            sched_yield();
    stop = 1;
    int all_rounds = 1;
    unsigned long bad = 0;
    for (int t = 0; t < WORKERS; t++) {
        pthread_join(threads[t], NULL);
        all_rounds &= rounds[t] >= 2;
        bad += bad_rounds[t];
    }
    printf("work: every worker finished rounds: %d, rounds with a wrong result: %lu\n", all_rounds,
           bad);
    for (int t = 0; t < WORKERS; t++)
        printf("worker %d: fp %a x87 %La hash %016llx\n", t, expected[t].fp, expected[t].x87,
               (unsigned long long)expected[t].hash);

    /* the blocked signal is still deliverable to main once unblocked */
    raise(SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
    printf("main handled %lu after unblocking\n", main_hits);
    return 0;
}
