/* mb-signal: signal delivery round trip. Usage: mb-signal N (N signals).
 * Alternates raise(SIGUSR1) and kill(getpid(), SIGUSR2); SA_SIGINFO handlers
 * count them and check si_signo. Each signal is delivered before the call
 * returns, so under a translator every one goes from the syscall gate through
 * signal-frame setup, the translated handler and rt_sigreturn. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t count1, count2, bad;

static void handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (si->si_signo != sig)
        bad++;
    if (sig == SIGUSR1)
        count1++;
    else
        count2++;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGUSR2, &sa, NULL)) {
        perror("sigaction");
        return 1;
    }
    pid_t me = getpid();
    for (long i = 0; i < n; i++) {
        if (i & 1)
            kill(me, SIGUSR2);
        else
            raise(SIGUSR1);
    }
    printf("signal %ld sent: %ld SIGUSR1, %ld SIGUSR2 handled, %ld bad\n", n, (long)count1,
           (long)count2, (long)bad);
    return 0;
}
