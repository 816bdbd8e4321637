/* benchrun: the harness's timer (not a workload).
 *
 *   benchrun [-t SECS] [-n REPS] [-i IN] [-o OUT] [-e ERR] -- PROG [ARGS...]
 *
 * Runs PROG REPS times in a row (stdin from IN, stdout/stderr appended to OUT/ERR)
 * and prints one line "STATUS WALL_SECONDS MAXRSS_KB": STATUS is "exit:N",
 * "signal:N" or "timeout". Written in C rather than timeout+/usr/bin/time so a
 * 1 ms /bin/true is not swamped by two extra fork/execs and 10 ms resolution.
 * Peak RSS is wait4()'s ru_maxrss, which covers the child's reaped descendants
 * (gcc's cc1 and as). The child gets its own process group so a timeout kills
 * the whole tree. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t expired, interrupted;
static volatile pid_t child;

static void on_alarm(int sig)
{
    (void)sig;
    expired = 1;
}

static void on_term(int sig)
{
    interrupted = sig;
    if (child > 0)
        kill(-child, SIGKILL);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_or_die(const char *path, int flags)
{
    int fd = open(path, flags, 0644);
    if (fd < 0) {
        fprintf(stderr, "benchrun: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    return fd;
}

int main(int argc, char **argv)
{
    double limit = 0;
    long reps = 1;
    const char *in = "/dev/null", *out = "/dev/null", *err = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+t:n:i:o:e:")) != -1) {
        switch (opt) {
        case 't': limit = atof(optarg); break;
        case 'n': reps = atol(optarg); break;
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'e': err = optarg; break;
        default:
            fprintf(
                stderr,
                "usage: benchrun [-t secs] [-n reps] [-i in] [-o out] [-e err] -- prog [args]\n");
            return 2;
        }
    }
    if (optind >= argc || reps < 1) {
        fprintf(stderr, "benchrun: no program given\n");
        return 2;
    }
    /* Opened once so every repetition appends at the shared offset. */
    int ofd = open_or_die(out, O_WRONLY | O_CREAT | O_TRUNC);
    int efd = err ? open_or_die(err, O_WRONLY | O_CREAT | O_TRUNC) : ofd;

    struct sigaction sa = {0};
    sa.sa_handler = on_alarm; /* no SA_RESTART: wait4 must return EINTR */
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_term;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    double total = 0;
    long maxrss = 0;
    char status[32] = "exit:0";
    for (long r = 0; r < reps; r++) {
        int ifd = open_or_die(in, O_RDONLY);
        double t0 = now();
        pid_t pid = fork();
        if (pid < 0) {
            perror("benchrun: fork");
            return 2;
        }
        if (pid == 0) {
            setpgid(0, 0);
            signal(SIGALRM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            signal(SIGHUP, SIG_DFL);
            dup2(ifd, 0);
            dup2(ofd, 1);
            dup2(efd, 2);
            execvp(argv[optind], argv + optind);
            dprintf(2, "benchrun: exec %s: %s\n", argv[optind], strerror(errno));
            _exit(127);
        }
        setpgid(pid, pid); /* also here, so kill(-pid) works before the child runs */
        child = pid;
        close(ifd);
        if (limit > 0) {
            double left = limit - total;
            if (left < 0.001)
                left = 0.001;
            struct itimerval it = {{0, 0},
                                   {(time_t)left, (suseconds_t)((left - (time_t)left) * 1e6)}};
            setitimer(ITIMER_REAL, &it, NULL);
        }
        int ws;
        struct rusage ru;
        pid_t w;
        while ((w = wait4(pid, &ws, 0, &ru)) < 0 && errno == EINTR) {
            if (expired || interrupted)
                kill(-pid, SIGKILL);
        }
        double t1 = now();
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        /* Reap anything left in the group (a daemonised grandchild). */
        kill(-pid, SIGKILL);
        child = 0;
        if (interrupted) {
            signal(interrupted, SIG_DFL);
            raise(interrupted);
            return 130;
        }
        if (w < 0) {
            perror("benchrun: wait4");
            return 2;
        }
        total += t1 - t0;
        if (ru.ru_maxrss > maxrss)
            maxrss = ru.ru_maxrss;
        if (expired) {
            strcpy(status, "timeout");
            break;
        }
        if (WIFSIGNALED(ws)) {
            snprintf(status, sizeof status, "signal:%d", WTERMSIG(ws));
            break;
        }
        snprintf(status, sizeof status, "exit:%d", WEXITSTATUS(ws));
        if (WEXITSTATUS(ws) != 0)
            break;
    }
    printf("%s %.6f %ld\n", status, total / reps, maxrss);
    return 0;
}
