/* fork and wait: each child is a copy of the translated process (its code
 * cache, its emulated state) and must run on its own; exit statuses and
 * deaths by signal must reach the parent exactly. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void describe(const char *what, int st)
{
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
    else
        printf("%s: status %#x\n", what, st);
}

static long work(long n)
{
    long s = 0;
    for (long i = 1; i <= n; i++)
        s += i * i % 7;
    return s;
}

/* Flush first, or stdio data buffered in the parent is written twice. */
static pid_t xfork(void)
{
    fflush(stdout);
    return fork();
}

int main(void)
{
    /* exit codes 0..5 collected in order */
    pid_t kids[6];
    for (int i = 0; i < 6; i++) {
        kids[i] = xfork();
        if (kids[i] < 0) {
            perror("fork");
            return 1;
        }
        if (kids[i] == 0)
            _exit(i * 3 + (work(100000 * (i + 1)) < 0));
    }
    for (int i = 0; i < 6; i++) {
        int st;
        char what[32];
        if (waitpid(kids[i], &st, 0) != kids[i])
            return 1;
        snprintf(what, sizeof what, "child %d", i);
        describe(what, st);
    }

    /* a child that is killed by the parent, one that aborts, one that
     * faults, and one that exits through exit() with atexit handlers */
    int p[2];
    if (pipe(p) != 0)
        return 1;
    pid_t k = xfork();
    if (k == 0) {
        close(p[0]);
        if (write(p[1], "R", 1) != 1)
            _exit(99);
        for (;;)
            pause();
    }
    close(p[1]);
    char c;
    if (read(p[0], &c, 1) != 1)
        return 1;
    kill(k, SIGTERM);
    int st;
    waitpid(k, &st, 0);
    describe("sleeper", st);
    close(p[0]);

    if ((k = xfork()) == 0) {
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    waitpid(k, &st, 0);
    describe("aborter", st);

    if ((k = xfork()) == 0) {
        volatile int *volatile np = NULL;
        *np = 1;
        _exit(0);
    }
    waitpid(k, &st, 0);
    describe("faulter", st);

    /* data flows child -> parent through a pipe; memory is not shared */
    int shared_var = 10;
    if (pipe(p) != 0)
        return 1;
    if ((k = xfork()) == 0) {
        close(p[0]);
        shared_var = 20;
        char buf[64];
        int n = snprintf(buf, sizeof buf, "child computed %ld", work(500000));
        if (write(p[1], buf, (size_t)n) != n)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    char buf[65];
    ssize_t n = read(p[0], buf, 64);
    buf[n > 0 ? n : 0] = 0;
    waitpid(k, &st, 0);
    printf("from pipe: '%s', parent var still %d\n", buf, shared_var);
    describe("writer", st);

    /* grandchild: the child forks again and reports its child's status */
    if ((k = xfork()) == 0) {
        pid_t g = xfork();
        if (g == 0)
            _exit(7);
        int gs;
        waitpid(g, &gs, 0);
        _exit(WEXITSTATUS(gs) + 1);
    }
    waitpid(k, &st, 0);
    describe("grandparent sees", st);

    /* stdout buffered before fork in the child, flushed by exit() */
    if ((k = xfork()) == 0) {
        printf("child line via stdio\n");
        exit(3);
    }
    waitpid(k, &st, 0);
    describe("stdio child", st);

    /* wait() with no children left */
    printf("wait with no children: %d\n", wait(&st));
    return 0;
}
