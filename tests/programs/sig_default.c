/* Default actions. Each case is a fresh process (this program re-executed
 * with the case name) that dies, or not, by a signal's default action; the
 * parent prints how it ended. Core dumps are disabled in the child, so
 * SIGQUIT and SIGABRT must not report one. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int spin_forever = 1;
static void *spinner(void *arg)
{
    volatile unsigned long *n = arg;
    while (spin_forever)
        (*n)++;
    return NULL;
}

static int run_case(const char *c)
{
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    printf("  %s: starting\n", c);
    fflush(stdout);
    if (!strcmp(c, "term"))
        raise(SIGTERM);
    else if (!strcmp(c, "quit"))
        kill(getpid(), SIGQUIT);
    else if (!strcmp(c, "usr1"))
        raise(SIGUSR1);
    else if (!strcmp(c, "alarm")) {
        struct itimerval it = {{0, 0}, {0, 10000}};
        setitimer(ITIMER_REAL, &it, NULL);
        for (;;)
            pause();
    } else if (!strcmp(c, "pipe")) {
        int fds[2];
        if (pipe(fds) != 0)
            return 1;
        close(fds[0]);
        ssize_t w = write(fds[1], "x", 1); /* SIGPIPE */
        printf("  write returned %zd\n", w);
    } else if (!strcmp(c, "kill"))
        kill(getpid(), SIGKILL);
    else if (!strcmp(c, "abort"))
        abort();
    else if (!strcmp(c, "blocked-term")) {
        /* dies only when the blocked signal is unblocked */
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGTERM);
        sigprocmask(SIG_BLOCK, &s, NULL);
        raise(SIGTERM);
        printf("  still alive while SIGTERM is blocked\n");
        fflush(stdout);
        sigprocmask(SIG_UNBLOCK, &s, NULL);
    } else if (!strcmp(c, "threads-term")) {
        /* a process-directed SIGTERM kills every thread */
        static volatile unsigned long n[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&t[i], NULL, spinner, (void *)&n[i]);
        for (int i = 0; i < 4; i++)
            while (n[i] == 0)
                sched_yield();
        kill(getpid(), SIGTERM);
        for (;;)
            pause();
    } else if (!strcmp(c, "thread-usr1")) {
        /* a thread-directed fatal signal also kills the whole process */
        static volatile unsigned long n;
        pthread_t t;
        pthread_create(&t, NULL, spinner, (void *)&n);
        while (n == 0)
            sched_yield();
        pthread_kill(t, SIGUSR1);
        pthread_join(t, NULL);
    } else if (!strcmp(c, "ignored")) {
        /* these are ignored by default */
        raise(SIGCHLD);
        raise(SIGURG);
        raise(SIGWINCH);
        printf("  survived SIGCHLD, SIGURG and SIGWINCH\n");
    } else if (!strcmp(c, "sig-ign")) {
        signal(SIGTERM, SIG_IGN);
        signal(SIGUSR1, SIG_IGN);
        raise(SIGTERM);
        kill(getpid(), SIGUSR1);
        printf("  survived ignored SIGTERM and SIGUSR1\n");
    } else if (!strcmp(c, "stop-cont")) {
        raise(SIGSTOP); /* the parent continues us */
        printf("  continued after SIGSTOP\n");
    } else
        return 2;
    printf("  %s: not killed\n", c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return run_case(argv[1]);
    static const char *cases[] = {
        "term",         "quit",         "usr1",        "alarm",   "pipe",    "kill",     "abort",
        "blocked-term", "threads-term", "thread-usr1", "ignored", "sig-ign", "stop-cont"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        printf("%s:\n", cases[i]);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            execl(argv[0], argv[0], cases[i], (char *)NULL);
            perror("execl");
            _exit(127);
        }
        int st;
        if (!strcmp(cases[i], "stop-cont")) {
            waitpid(pid, &st, WUNTRACED);
            printf("  stopped %d by %d\n", WIFSTOPPED(st), WIFSTOPPED(st) ? WSTOPSIG(st) : 0);
            fflush(stdout);
            kill(pid, SIGCONT);
        }
        waitpid(pid, &st, 0);
        if (WIFEXITED(st))
            printf("  -> exited %d\n", WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
            printf("  -> killed by signal %d (%s)%s\n", WTERMSIG(st), strsignal(WTERMSIG(st)),
                   WCOREDUMP(st) ? ", core dumped" : "");
    }
    return 0;
}
