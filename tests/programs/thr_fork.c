/* fork in a multithreaded program: the child has only the forking thread
 * (from main or from a worker), can use malloc, stdio and new threads, and
 * pthread_atfork handlers run in order; the parent's 16 running threads
 * carry on and are joined. Several threads also fork at the same time. */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNNERS 16

static volatile int stop;
static volatile unsigned long progress[RUNNERS];
static uint64_t results[RUNNERS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long locked_count;

static void *runner(void *arg)
{
    int i = (int)(uintptr_t)arg;
    uint64_t h = i + 1;
    unsigned long k = 0;
    while (!stop) {
        h = h * 6364136223846793005ULL + 1442695040888963407ULL;
        if ((++k & 1023) == 0) {
            progress[i]++;
            /* malloc and a mutex in the loop: fork must not catch them in a
             * state the child cannot use */
            void *p = malloc(64 + (k & 255));
            pthread_mutex_lock(&lock);
            locked_count++;
            pthread_mutex_unlock(&lock);
            free(p);
        }
    }
    results[i] = h;
    return NULL;
}

static int count_tasks(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* a joined thread has cleared its tid but may not have left the task list
 * yet (natively a tiny window), so wait a little for the count to drop */
static int settled_tasks(int want)
{
    int n = count_tasks();
    for (int i = 0; i < 500 && n > want; i++) {
        usleep(1000);
        n = count_tasks();
    }
    return n;
}

static char order[64];
static int order_len;
static void prep1(void)
{
    order[order_len++] = 'p';
}
static void prep2(void)
{
    order[order_len++] = 'P';
}
static void parent1(void)
{
    order[order_len++] = 'a';
}
static void parent2(void)
{
    order[order_len++] = 'A';
}
static void child1(void)
{
    order[order_len++] = 'c';
}
static void child2(void)
{
    order[order_len++] = 'C';
}

/* our own lock is taken around fork, so the child gets it free */
static void lock_prepare(void)
{
    pthread_mutex_lock(&lock);
}
static void lock_release(void)
{
    pthread_mutex_unlock(&lock);
}

static void *child_thread(void *arg)
{
    return (void *)((uintptr_t)arg * 3);
}

/* what a child does: report, use malloc, stdio, a mutex and a new thread */
static int child_work(const char *who)
{
    order[order_len] = 0;
    int tasks = count_tasks(); /* before this child makes a thread of its own */
    char *buf = malloc(100000);
    memset(buf, 'z', 100000);
    pthread_mutex_lock(&lock); /* free: see lock_prepare */
    pthread_mutex_unlock(&lock);
    pthread_t t;
    void *r = NULL;
    int e = pthread_create(&t, NULL, child_thread, (void *)14);
    if (e == 0)
        pthread_join(t, &r);
    printf("  %s child: threads %d, atfork order \"%s\", malloc ok %d, new thread returned %d\n",
           who, tasks, order, buf[99999] == 'z', (int)(uintptr_t)r);
    free(buf);
    fflush(stdout);
    return 5;
}

static void report(const char *who, pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid) {
        perror("waitpid");
        exit(1);
    }
    printf("  %s child %s %d\n", who, WIFEXITED(st) ? "exited" : "killed by signal",
           WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static pid_t fork_now(void)
{
    order_len = 0;
    fflush(stdout);
    return fork();
}

static void *forking_worker(void *arg)
{
    (void)arg;
    pid_t pid = fork_now();
    if (pid == 0)
        exit(child_work("worker's"));
    order[order_len] = 0;
    return (void *)(intptr_t)pid;
}

/* several threads fork at once; each child exits with its index */
static void *concurrent_forker(void *arg)
{
    int i = (int)(uintptr_t)arg;
    pid_t pid = fork();
    if (pid == 0)
        _exit(20 + i);
    int st;
    waitpid(pid, &st, 0);
    return (void *)(intptr_t)(WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int main(void)
{
    pthread_atfork(lock_prepare, lock_release, lock_release); /* its prepare runs last */
    pthread_atfork(prep1, parent1, child1);
    pthread_atfork(prep2, parent2, child2);
    pthread_t t[RUNNERS];
    for (int i = 0; i < RUNNERS; i++)
        pthread_create(&t[i], NULL, runner, (void *)(uintptr_t)i);
    for (int i = 0; i < RUNNERS; i++)
        while (progress[i] < 2)
            sched_yield();
    printf("parent: %d threads running\n", count_tasks());

    printf("fork from the main thread:\n");
    pid_t pid = fork_now();
    if (pid == 0)
        exit(child_work("main's"));
    order[order_len] = 0;
    printf("  parent atfork order \"%s\"\n", order);
    report("main's", pid);

    printf("fork from a worker thread:\n");
    pthread_t w;
    void *r;
    pthread_create(&w, NULL, forking_worker, NULL);
    pthread_join(w, &r);
    printf("  parent atfork order \"%s\"\n", order);
    report("worker's", (pid_t)(intptr_t)r);

    printf("4 threads fork at once:\n");
    pthread_t f[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&f[i], NULL, concurrent_forker, (void *)(uintptr_t)i);
    for (int i = 0; i < 4; i++) {
        pthread_join(f[i], &r);
        printf("  forker %d: child exited %d\n", i, (int)(intptr_t)r);
    }

    /* the runners kept going through all of this */
    unsigned long before[RUNNERS];
    for (int i = 0; i < RUNNERS; i++)
        before[i] = progress[i];
    for (int i = 0; i < RUNNERS; i++)
        while (progress[i] < before[i] + 2)
            sched_yield();
    stop = 1;
    int distinct = 1;
    for (int i = 0; i < RUNNERS; i++) {
        pthread_join(t[i], NULL);
        for (int j = 0; j < i; j++)
            distinct &= results[i] != results[j];
    }
    printf("parent: joined %d runners, results distinct %d, now %d thread\n", RUNNERS, distinct,
           settled_tasks(1));
    return 0;
}
