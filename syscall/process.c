/* Process creation and replacement: fork-like clones stay under dbo (the
 * child is a copy of this runtime), execve re-executes dbo with the same
 * options, exit prints --stats first. Threads (CLONE_VM|CLONE_THREAD) are
 * hosted by runtime pthreads in the threads work; until then clone answers
 * EAGAIN, which callers such as pthread_create report and survive. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loader/loader.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "syscall/syscall_internal.h"
#include "translator/translator.h"

#define FORK_FLAGS (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | CLONE_PARENT_SETTID | CLONE_SETTLS | \
                    CLONE_VFORK | CLONE_VM)

/* The parent of a vfork waits until the child has exec'd or exited: the
 * write end of this pipe is close-on-exec and held only by the child. */
static int vfork_pipe(int fds[2])
{
    int raw[2];
    if (pipe2(raw, O_CLOEXEC) < 0)
        return -1;
    /* High numbers, out of the way of the fds the child rearranges. */
    fds[0] = fcntl(raw[0], F_DUPFD_CLOEXEC, 900);
    fds[1] = fcntl(raw[1], F_DUPFD_CLOEXEC, 900);
    close(raw[0]);
    close(raw[1]);
    return fds[0] < 0 || fds[1] < 0 ? -1 : 0;
}

long emulate_clone(struct guest_context *ctx, uint64_t flags, uint64_t newsp, uint64_t ptid,
                   uint64_t ctid, uint64_t tls)
{
    if ((flags & CLONE_VM) && !(flags & CLONE_VFORK))
        return -EAGAIN; /* guest threads: not hosted yet */
    bool plain = (flags & ~(uint64_t)FORK_FLAGS & ~0xffull) == 0 && (flags & 0xff) == SIGCHLD;
    int pipefd[2] = {-1, -1};
    if ((flags & CLONE_VFORK) && vfork_pipe(pipefd) < 0)
        return -EAGAIN;
    long pid;
    if (plain) {
        pid = fork(); /* through glibc, so the runtime's own locks are sane in the child */
        if (pid < 0)
            pid = -errno;
    } else {
        uint64_t raw_flags = flags & ~(uint64_t)FORK_FLAGS;
        pid = syscall_raw(SYS_clone, raw_flags, 0, 0, 0, 0, 0);
    }
    if (pid == 0) {
        if (pipefd[0] >= 0)
            close(pipefd[0]);
        if (flags & CLONE_CHILD_SETTID)
            *(int *)ctid = (int)syscall_raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
        if (flags & CLONE_CHILD_CLEARTID)
            syscall_raw(SYS_set_tid_address, ctid, 0, 0, 0, 0, 0);
        if (flags & CLONE_SETTLS)
            ctx->guest_fs = tls;
        if (newsp)
            ctx->gpr[GPR_RSP] = newsp;
        ctx->ts.tid = (int)syscall_raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
        return 0;
    }
    if (pipefd[1] >= 0) {
        close(pipefd[1]);
        char c;
        if (pid > 0)
            while (read(pipefd[0], &c, 1) < 0 && errno == EINTR)
                ;
        close(pipefd[0]);
    }
    if (pid > 0 && (flags & CLONE_PARENT_SETTID))
        *(int *)ptid = (int)pid;
    return pid;
}

long emulate_clone3(struct guest_context *ctx, const void *args, uint64_t size)
{
    (void)ctx, (void)args, (void)size;
    return -ENOSYS; /* glibc falls back to clone, which we handle */
}

void emulate_exit_group(int status)
{
    dbo_print_stats();
    syscall_raw(SYS_exit_group, status, 0, 0, 0, 0, 0);
    __builtin_unreachable();
}

static size_t count(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

long emulate_execve(struct guest_context *ctx, int dirfd, const char *path, char *const *argv,
                    char *const *envp, int flags)
{
    (void)ctx;
    char resolved[4096];
    if (path[0] == '/' || (dirfd == AT_FDCWD && path[0])) {
        snprintf(resolved, sizeof resolved, "%s", path);
    } else if (!path[0] && (flags & AT_EMPTY_PATH)) {
        snprintf(resolved, sizeof resolved, "/proc/self/fd/%d", dirfd);
    } else if (path[0]) {
        snprintf(resolved, sizeof resolved, "/proc/self/fd/%d/%s", dirfd, path);
    } else {
        return -ENOENT;
    }
    int err = 0;
    if (loader_check_executable(resolved, &err))
        return -err;

    /* dbo [options] --argv0 ARGV0 -- PATH ARGV[1..] */
    size_t argc = count(argv), n = 0;
    char **new_argv = calloc(dbo_opts.option_argc + argc + 6, sizeof *new_argv);
    new_argv[n++] = dbo_self_path;
    for (int i = 0; i < dbo_opts.option_argc; i++)
        new_argv[n++] = dbo_opts.option_argv[i];
    new_argv[n++] = "--argv0";
    new_argv[n++] = argc ? argv[0] : "";
    new_argv[n++] = "--";
    new_argv[n++] = resolved;
    for (size_t i = 1; i < argc; i++)
        new_argv[n++] = argv[i];

    /* LD_* variables are the guest's, not dbo's own loader's: hide them
     * from it in place (order matters to programs that print the
     * environment); the new dbo puts them back for the guest. */
    size_t envc = count(envp);
    char **new_envp = calloc(envc + 1, sizeof *new_envp);
    for (size_t i = 0; i < envc; i++) {
        if (strncmp(envp[i], "LD_", 3) == 0) {
            size_t len = strlen(envp[i]) + sizeof "DBO_GUEST_";
            new_envp[i] = malloc(len);
            snprintf(new_envp[i], len, "DBO_GUEST_%s", envp[i]);
        } else {
            new_envp[i] = envp[i];
        }
    }
    dbo_print_stats();
    long r = syscall_raw(SYS_execve, (long)dbo_self_path, (long)new_argv, (long)new_envp, 0, 0, 0);
    for (size_t i = 0; i < envc; i++)
        if (new_envp[i] != envp[i])
            free(new_envp[i]);
    free(new_envp);
    free(new_argv);
    return r;
}
