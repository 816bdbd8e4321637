/* Queued real-time signals keep their own siginfo: a child sends its
 * parent SIGRTMIN three times with sigqueue (values 1, 2, 3) while the
 * parent blocks it; when the parent unblocks, the kernel hands all three
 * over at once, and each handler run must see its own value, in order
 * (as a child's SIGCHLD for CLD_CONTINUED must stay one, followed by
 * another for CLD_EXITED: sig_chld). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t n_seen;
static volatile int seen_value[8], seen_code[8];

static void on_rt(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    if (n_seen < 8) {
        seen_value[n_seen] = si->si_value.sival_int;
        seen_code[n_seen] = si->si_code;
        n_seen++;
    }
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGRTMIN, &sa, NULL) != 0)
        return 1;
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        for (int i = 1; i <= 3; i++) {
            union sigval v = {.sival_int = i};
            if (sigqueue(parent, SIGRTMIN, v) != 0)
                _exit(1);
        }
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    sigprocmask(SIG_SETMASK, &old, NULL); /* all three arrive here */
    printf("handled %d:", (int)n_seen);
    for (int i = 0; i < n_seen; i++)
        printf(" value %d%s", seen_value[i], seen_code[i] == SI_QUEUE ? " (SI_QUEUE)" : "");
    printf("\n");
    return 0;
}
