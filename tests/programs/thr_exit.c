/* How a multithreaded process ends: exit() (exit_group) from a non-main
 * thread while others run, main returning while others spin, the main
 * thread calling pthread_exit so that the last thread to finish decides the
 * exit status, and raw SYS_exit of single threads. Each case runs in a
 * forked child and the parent prints the status it collects. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int spin_forever = 1;
static volatile unsigned long spins[8];

static void *spinner(void *arg)
{
    int i = (int)(uintptr_t)arg;
    double x = 1.0;
    while (spin_forever) { /* no system calls */
        spins[i]++;
        x = x * 1.0000001 + 1e-9;
    }
    return (void *)(uintptr_t)(x > 0);
}

static void start_spinners(pthread_t *t, int n)
{
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, spinner, (void *)(uintptr_t)i) != 0)
            _exit(100);
    /* wait until every spinner has really started */
    for (int i = 0; i < n; i++)
        while (spins[i] == 0)
            sched_yield();
}

static pthread_t main_thread;
static void at_exit_report(void)
{
    printf("  atexit handler: in main thread %d\n", pthread_equal(pthread_self(), main_thread));
}

/* 1: exit() from a worker while 4 others spin and main waits in join */
static void *exiter(void *arg)
{
    (void)arg;
    printf("  worker calls exit(23)\n");
    exit(23);
}
static void case_exit_from_thread(void)
{
    pthread_t t[5];
    atexit(at_exit_report);
    start_spinners(t, 4);
    pthread_create(&t[4], NULL, exiter, NULL);
    pthread_join(t[0], NULL); /* never returns */
    printf("  unreachable\n");
}

/* 2: raw exit_group from a worker while main blocks in read() */
static void *group_exiter(void *arg)
{
    (void)arg;
    fflush(stdout);
    syscall(SYS_exit_group, 24);
    return NULL;
}
static void case_exit_group_while_blocked(void)
{
    int fds[2];
    pthread_t t[3];
    if (pipe(fds) != 0)
        _exit(101);
    start_spinners(t, 2);
    printf("  main blocks in read\n");
    pthread_create(&t[2], NULL, group_exiter, NULL);
    char c;
    ssize_t n = read(fds[0], &c, 1); /* never returns */
    printf("  unreachable %zd\n", n);
}

/* 3-5: main calls pthread_exit; workers finish one after another (each
 * joins its predecessor) and the last one ends the process */
static int last_action; /* 0 return, 1 exit(9), 2 pthread_exit */
static pthread_t chain[4];

static void *chained(void *arg)
{
    int i = (int)(uintptr_t)arg;
    long s = 0;
    if (i == 0) {
        /* wait until the main thread is really gone (the kernel clears its
         * tid on exit), so that a worker is always the last thread */
        int e = pthread_join(main_thread, NULL);
        printf("  worker 0 joined the main thread: %d\n", e == 0);
    } else {
        void *r;
        pthread_join(chain[i - 1], &r);
        s = (long)(intptr_t)r;
    }
    for (long k = 0; k < 200000; k++)
        s += (k * (i + 1)) % 11;
    printf("  worker %d finished, carry %ld\n", i, s);
    if (i == 3) {
        if (last_action == 1) {
            printf("  last worker calls exit(9)\n");
            exit(9);
        }
        if (last_action == 2) {
            printf("  last worker calls pthread_exit\n");
            pthread_exit(NULL);
        }
        printf("  last worker returns\n");
    }
    return (void *)(intptr_t)s;
}
static void case_main_pthread_exit(int action)
{
    last_action = action;
    atexit(at_exit_report);
    printf("  main starts 4 workers and calls pthread_exit\n");
    for (int i = 0; i < 4; i++)
        pthread_create(&chain[i], NULL, chained, (void *)(uintptr_t)i);
    pthread_exit(NULL);
}

/* 6: main returns 11 from "main" while workers spin */
static int case_main_returns(void)
{
    pthread_t t[4];
    start_spinners(t, 4);
    printf("  main returns 11 with 4 threads spinning\n");
    return 11;
}

/* 7: a worker ends itself with raw SYS_exit; join still works */
static void *raw_exit(void *arg)
{
    (void)arg;
    syscall(SYS_exit, 77); /* only this thread; its status is not the process's */
    return (void *)1;
}
static int case_raw_thread_exit(void)
{
    pthread_t t;
    void *r = (void *)42;
    pthread_create(&t, NULL, raw_exit, NULL);
    int e = pthread_join(t, &r); /* the kernel clears the tid and wakes us */
    printf("  joined a thread that used SYS_exit: %d, result %p\n", e == 0, r);
    return 12;
}

/* 8: the main thread leaves with raw SYS_exit; a worker exits 13 later */
static void *late_exiter(void *arg)
{
    (void)arg;
    for (volatile long k = 0; k < 3000000; k++)
        ;
    printf("  worker outlived the main thread, exits 13\n");
    exit(13);
}
static void case_main_raw_exit(void)
{
    pthread_t t;
    printf("  main thread starts a worker and uses SYS_exit\n");
    fflush(stdout);
    pthread_create(&t, NULL, late_exiter, NULL);
    syscall(SYS_exit, 0);
}

static void run(const char *name, int which)
{
    printf("%s:\n", name);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        main_thread = pthread_self();
        switch (which) {
        case 1: case_exit_from_thread(); break;
        case 2: case_exit_group_while_blocked(); break;
        case 3: case_main_pthread_exit(0); break;
        case 4: case_main_pthread_exit(1); break;
        case 5: case_main_pthread_exit(2); break;
        case 6: exit(case_main_returns());
        case 7: exit(case_raw_thread_exit());
        case 8: case_main_raw_exit(); break;
        }
        _exit(99);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) {
        perror("waitpid");
        exit(1);
    }
    if (WIFEXITED(st))
        printf("  -> exited %d\n", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("  -> killed by signal %d\n", WTERMSIG(st));
    else
        printf("  -> status %#x\n", st);
}

int main(void)
{
    run("exit() from a worker while others spin", 1);
    run("exit_group from a worker while main blocks in read", 2);
    run("main pthread_exit, last worker returns", 3);
    run("main pthread_exit, last worker calls exit(9)", 4);
    run("main pthread_exit, last worker pthread_exit", 5);
    run("main returns while workers spin", 6);
    run("worker ends with raw SYS_exit", 7);
    run("main thread ends with raw SYS_exit", 8);
    return 0;
}
