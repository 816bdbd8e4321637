/* vfork and posix_spawn: vfork shares the parent's memory and suspends it
 * until the child execs or exits, which a translator must respect (or
 * emulate faithfully); posix_spawn uses clone(CLONE_VM|CLONE_VFORK) with a
 * separate stack inside glibc. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int status_of(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0); /* children share the stdout fd */

    pid_t k = vfork();
    if (k == 0)
        _exit(3);
    printf("vfork+_exit: %d\n", status_of(k));

    /* the vfork child writes the parent's memory before exiting */
    volatile int shared = 1;
    k = vfork();
    if (k == 0) {
        shared = 42;
        _exit(0);
    }
    status_of(k);
    printf("vfork shares memory: %d\n", shared);

    k = vfork();
    if (k == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    printf("vfork+exec /bin/true: %d\n", status_of(k));

    k = vfork();
    if (k == 0) {
        execl("/bin/false", "false", (char *)NULL);
        _exit(127);
    }
    printf("vfork+exec /bin/false: %d\n", status_of(k));

    pid_t pid;
    char *true_argv[] = {"true", NULL};
    int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, true_argv, environ);
    printf("posix_spawn /bin/true: rc %d status %d\n", rc, status_of(pid));

    char *sh_argv[] = {"sh", "-c", "exit 9", NULL};
    rc = posix_spawnp(&pid, "sh", NULL, NULL, sh_argv, environ);
    printf("posix_spawnp sh: rc %d status %d\n", rc, status_of(pid));

    /* file actions: child stdout into a pipe we read */
    int p[2];
    if (pipe(p) != 0)
        return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    char *echo_argv[] = {"echo", "through", "a", "pipe", NULL};
    rc = posix_spawn(&pid, "/bin/echo", &fa, NULL, echo_argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    char buf[128];
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    close(p[0]);
    printf("posix_spawn echo: rc %d status %d output '%.*s'\n", rc, status_of(pid),
           (int)strcspn(buf, "\n"), buf);

    char *missing_argv[] = {"x", NULL};
    rc = posix_spawn(&pid, "/nonexistent/x", NULL, NULL, missing_argv, environ);
    printf("posix_spawn missing: rc %s\n", rc == 0 ? "0" : strerror(rc));

    printf("system: %d\n", WEXITSTATUS(system("echo from system; exit 4")));
    return 0;
}
