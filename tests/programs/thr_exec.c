/* execve and posix_spawn in a multithreaded program. execve from a
 * non-main thread while others spin: the new image has one thread, which
 * has taken over the process id. /proc/self/exe: stat and execve of it
 * reach the program. posix_spawn
 * from several threads at once, each child's stdout in its own pipe. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static const char *self;

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

/* --- the re-executed images ------------------------------------------- */

static int image(int argc, char **argv)
{
    if (!strcmp(argv[1], "--image")) {
        /* argv: --image OLDPID TAG */
        long old = strtol(argv[2], NULL, 10);
        printf("  new image (%s): argc %d, same pid %d, tid == pid %d, threads %d\n", argv[3], argc,
               getpid() == old, (pid_t)syscall(SYS_gettid) == getpid(), count_tasks());
        char buf[64];
        ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = 0;
        const char *base = strrchr(buf, '/');
        printf("  /proc/self/exe ends in the program's name %d\n",
               base && !strcmp(base + 1, strrchr(self, '/') ? strrchr(self, '/') + 1 : self));
        return 7;
    }
    if (!strcmp(argv[1], "--spawned")) {
        /* argv: --spawned N; stdout is a pipe to the spawning thread */
        int n = atoi(argv[2]);
        long s = 0;
        for (int i = 0; i < 100000 * (n + 1); i++)
            s += i % (n + 3);
        printf("spawned %d computed %ld", n, s);
        return 30 + n;
    }
    return 2;
}

/* --- execve from a worker --------------------------------------------- */

static volatile int spin = 1;
static volatile unsigned long spun[4];

static void *spinner(void *arg)
{
    int i = (int)(uintptr_t)arg;
    while (spin)
        spun[i]++;
    return NULL;
}

static void *execer(void *arg)
{
    const char *path = arg;
    char pid[32];
    snprintf(pid, sizeof pid, "%d", getpid());
    fflush(stdout);
    execl(path, self, "--image", pid, path == self ? "from a worker" : "via /proc/self/exe",
          (char *)NULL);
    printf("  execl failed: %s\n", strerror(errno));
    exit(1);
}

static void exec_from_thread(const char *path)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t t[4], x;
        for (int i = 0; i < 3; i++)
            pthread_create(&t[i], NULL, spinner, (void *)(uintptr_t)i);
        for (int i = 0; i < 3; i++)
            while (!spun[i])
                sched_yield();
        printf("  before exec: threads %d\n", count_tasks());
        pthread_create(&x, NULL, execer, (void *)path);
        pthread_join(x, NULL); /* never returns: the exec ends this image */
        _exit(99);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("  -> %s %d\n", WIFEXITED(st) ? "exited" : "killed by signal",
           WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* --- posix_spawn from threads ----------------------------------------- */

struct spawn_job {
    int n;
    int status;
    char out[128];
    int err;
};

static void *spawner(void *arg)
{
    struct spawn_job *j = arg;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        j->err = errno;
        return NULL;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    char num[16];
    snprintf(num, sizeof num, "%d", j->n);
    char *argv[] = {(char *)self, "--spawned", num, NULL};
    pid_t pid;
    j->err = posix_spawn(&pid, self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (j->err) {
        close(p[0]);
        return NULL;
    }
    size_t got = 0;
    ssize_t r;
    while (got < sizeof j->out - 1 && (r = read(p[0], j->out + got, sizeof j->out - 1 - got)) > 0)
        got += r;
    j->out[got] = 0;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    j->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return NULL;
}

static void spawn_from_threads(void)
{
    struct spawn_job jobs[6];
    pthread_t t[6];
    for (int i = 0; i < 6; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].n = i;
        pthread_create(&t[i], NULL, spawner, &jobs[i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        if (jobs[i].err)
            printf("  thread %d: posix_spawn failed: %s\n", i, strerror(jobs[i].err));
        else
            printf("  thread %d: \"%s\", exit %d\n", i, jobs[i].out, jobs[i].status);
    }

    /* posix_spawnp through PATH, from a thread, of a shell */
    pid_t pid;
    char *argv[] = {"sh", "-c", "exit 17", NULL};
    int e = posix_spawnp(&pid, "sh", NULL, NULL, argv, environ);
    int st = 0;
    if (!e)
        waitpid(pid, &st, 0);
    printf("  posix_spawnp sh: %d, exit %d\n", e, WEXITSTATUS(st));
    e = posix_spawn(&pid, "/nonexistent/program", NULL, NULL, argv, environ);
    printf("  posix_spawn of a missing file: %s\n", strerror(e));
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc > 1)
        return image(argc, argv);
    setvbuf(stdout, NULL, _IONBF, 0);
    /* what /proc/self/exe names and opens is this program, not a translator */
    struct stat a, b;
    printf("stat(/proc/self/exe) is the program file: %d\n",
           stat("/proc/self/exe", &a) == 0 && stat(self, &b) == 0 && a.st_ino == b.st_ino &&
               a.st_dev == b.st_dev);
    printf("execve from a non-main thread with 3 others spinning:\n");
    exec_from_thread(self);
    printf("execve of /proc/self/exe from a non-main thread:\n");
    exec_from_thread("/proc/self/exe");
    printf("posix_spawn from 6 threads at once:\n");
    spawn_from_threads();
    return 0;
}
