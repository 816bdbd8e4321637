/* What a program learns about itself from the kernel: its name (comm, as
 * /proc/self/comm, prctl(PR_GET_NAME), the Name: of /proc/self/status and
 * the second field of /proc/self/stat, which ps, top, pgrep and killall
 * show), its command line and environment as /proc/self/cmdline and
 * /proc/self/environ present them, AT_EXECFN, thread names set with
 * pthread_setname_np, and the same for a child it forks. A translator that
 * starts the program from its own executable must keep all of them the
 * program's. Only comparisons and basenames are printed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static size_t slurp(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    size_t got = 0;
    ssize_t r;
    while (got < size - 1 && (r = read(fd, buf + got, size - 1 - got)) > 0)
        got += r;
    close(fd);
    buf[got] = 0;
    return got;
}

static void chomp(char *s)
{
    s[strcspn(s, "\n")] = 0;
}

static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* the NUL-separated argv in /proc/self/cmdline, compared with ours */
static int cmdline_matches(int argc, char **argv)
{
    static char buf[8192];
    size_t n = slurp("/proc/self/cmdline", buf, sizeof buf), off = 0;
    for (int i = 0; i < argc; i++) {
        if (off >= n || strcmp(buf + off, argv[i]) != 0)
            return 0;
        off += strlen(argv[i]) + 1;
    }
    return off == n;
}

static int environ_matches(void)
{
    static char buf[65536];
    size_t n = slurp("/proc/self/environ", buf, sizeof buf), off = 0;
    for (char **e = environ; *e; e++) {
        if (off >= n || strcmp(buf + off, *e) != 0)
            return 0;
        off += strlen(*e) + 1;
    }
    return off == n;
}

static void names(const char *who, int argc, char **argv)
{
    char comm[64], status[4096], stat[1024], pr[17] = {0};
    slurp("/proc/self/comm", comm, sizeof comm);
    chomp(comm);
    prctl(PR_GET_NAME, pr);
    slurp("/proc/self/status", status, sizeof status);
    char *name = strstr(status, "Name:\t");
    name = name ? name + 6 : status;
    chomp(name);
    slurp("/proc/self/stat", stat, sizeof stat);
    char *open = strchr(stat, '('), *close = strrchr(stat, ')');
    if (open && close)
        *close = 0;
    printf("%s: comm \"%s\", PR_GET_NAME \"%s\", status Name \"%s\", stat \"%s\"\n", who, comm, pr,
           name, open ? open + 1 : "?");
    printf("%s: cmdline is argv %d, environ is environ %d\n", who, cmdline_matches(argc, argv),
           environ_matches());
}

static pthread_barrier_t named;

static void *named_thread(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&named); /* the creator has named us */
    char pr[17] = {0}, path[64], comm[64];
    prctl(PR_GET_NAME, pr);
    snprintf(path, sizeof path, "/proc/self/task/%ld/comm", (long)syscall(SYS_gettid));
    slurp(path, comm, sizeof comm);
    chomp(comm);
    printf("thread: PR_GET_NAME \"%s\", its comm \"%s\"\n", pr, comm);
    prctl(PR_SET_NAME, "renamed-self");
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    printf("AT_EXECFN is argv[0] %d, program_invocation_short_name \"%s\"\n",
           execfn && !strcmp(execfn, argv[0]), program_invocation_short_name);
    names("process", argc, argv);

    /* a thread named by its creator, then renaming itself */
    pthread_t t;
    pthread_barrier_init(&named, NULL, 2);
    pthread_create(&t, NULL, named_thread, NULL);
    int e = pthread_setname_np(t, "dbo-test-worker");
    printf("pthread_setname_np: %s\n", e ? strerror(e) : "ok");
    pthread_barrier_wait(&named);
    pthread_join(t, NULL);
    char buf[32];
    e = pthread_getname_np(pthread_self(), buf, sizeof buf);
    printf("main thread's name via pthread_getname_np: \"%s\" (%d)\n", e ? "?" : buf, e);

    /* the process renames itself: comm changes, cmdline does not */
    prctl(PR_SET_NAME, "renamed");
    names("after PR_SET_NAME", argc, argv);

    /* a forked child has the same; after exec of /bin/cat it is "cat" */
    pid_t pid = fork();
    if (pid == 0) {
        names("forked child", argc, argv);
        execl("/bin/cat", "cat", "/proc/self/comm", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child exited %d; program basename \"%s\"\n", WEXITSTATUS(st), base(argv[0]));
    return 0;
}
