/* Threads and processes. A guest thread (clone with CLONE_VM) is hosted by
 * a runtime pthread that starts with a copy of the parent's registers, its
 * own stack pointer and TLS; the CLONE_*SETTID/CLEARTID words are written
 * as the kernel would. Fork-like clones stay under dbo (the child is a copy
 * of this runtime), execve re-executes dbo with the same options, exit
 * prints --stats first. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loader/loader.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "syscall/syscall_internal.h"
#include "translator/translator.h"

#define FORK_FLAGS                                                                                 \
    (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | CLONE_PARENT_SETTID | CLONE_SETTLS |              \
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

struct thread_start {
    struct guest_context *ctx;
    uint64_t flags, ptid, ctid;
    bool parent_waits; /* for the tid: then `started` is posted, else `start` is the child's */
    void *entry;       /* else: where it enters the cache, looked up by the parent */
    sem_t started;
};

/* Where glibc keeps a pthread's kernel tid, which its clone
 * (CLONE_PARENT_SETTID) has written by the time pthread_create returns:
 * the offset that libthread_db reads from libc itself, checked on this
 * thread. 0 if unknown: then the parent waits for the new thread to say. */
static uint32_t pthread_tid_offset;

void process_init(void)
{
    const uint32_t *field = dlsym(RTLD_DEFAULT, "_thread_db_pthread_tid");
    if (!field || field[0] != 32 || field[1] != 1 || field[2] > 4096)
        return;
    int tid;
    memcpy(&tid, (const uint8_t *)pthread_self() + field[2], sizeof tid);
    if (tid == (int)syscall_raw(SYS_gettid, 0, 0, 0, 0, 0, 0))
        pthread_tid_offset = field[2];
}

static void *thread_main(void *arg)
{
    struct thread_start *start = arg;
    struct guest_context *ctx = start->ctx;
    ctx->host_fs = (uint64_t)__builtin_thread_pointer();
    context_set_gs(ctx);
    signals_init_thread(ctx);
    ctx->ts.tid = (int)syscall_raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
    if (start->flags & CLONE_CHILD_SETTID)
        *(int *)start->ctid = ctx->ts.tid;
    if (start->flags & CLONE_CHILD_CLEARTID)
        ctx->ts.clear_tid = start->ctid;
    if (start->parent_waits) {
        if (start->flags & CLONE_PARENT_SETTID)
            *(int *)start->ptid = ctx->ts.tid;
        sem_post(&start->started); /* `start` belongs to the parent from here */
        translator_run(ctx);
    }
    void *entry = start->entry;
    free(start);
    dbo_enter_guest(ctx, entry); /* no lock: the parent has done the lookup */
}

static long create_thread(struct guest_context *parent, uint64_t flags, uint64_t newsp,
                          uint64_t ptid, uint64_t ctid, uint64_t tls)
{
    struct guest_context *ctx = context_create(parent->use_fsgsbase);
    memcpy(ctx->gpr, parent->gpr, sizeof ctx->gpr);
    context_fp_sync(parent);
    memcpy(ctx->xsave, parent->xsave, sizeof ctx->xsave);
    context_fp_written(ctx);
    ctx->rflags = parent->rflags;
    ctx->rip = parent->rip;
    ctx->gpr[GPR_RAX] = 0;
    ctx->gpr[GPR_RCX] = parent->rip; /* what `syscall` leaves there */
    ctx->gpr[GPR_R11] = parent->rflags;
    if (newsp)
        ctx->gpr[GPR_RSP] = newsp;
    ctx->guest_fs = (flags & CLONE_SETTLS) ? tls : parent->guest_fs;
    ctx->ts.guest_gs = parent->ts.guest_gs;
    ctx->ts.sigmask = parent->ts.sigmask;

    struct thread_start *start = malloc(sizeof *start);
    *start = (struct thread_start){.ctx = ctx, .flags = flags, .ptid = ptid, .ctid = ctid};
    bool parent_waits = start->parent_waits = pthread_tid_offset == 0;
    if (parent_waits)
        sem_init(&start->started, 0, 0);
    else
        start->entry = translator_thread_entry(ctx);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    /* The new thread starts with every signal blocked: until it has set its
     * %gs, the runtime's handler could not find its context. */
    sigset_t all;
    sigfillset(&all);
    pthread_attr_setsigmask_np(&attr, &all);
    pthread_t thread;
    int err = pthread_create(&thread, &attr, thread_main, start);
    pthread_attr_destroy(&attr);
    if (err) {
        free(start);
        context_release(ctx);
        return -err;
    }
    if (!parent_waits) { /* (`start` may be freed already) */
        /* The tid is known now (the new thread may run guest code
         * already, but not exit, which clears that field, before this one
         * lets go of the lock): no waiting for it to start. */
        int tid;
        memcpy(&tid, (const uint8_t *)thread + pthread_tid_offset, sizeof tid);
        ctx->ts.tid = tid;
        if (flags & CLONE_PARENT_SETTID)
            *(int *)ptid = tid;
        return tid;
    }
    translator_unlock(); /* the new thread needs it to start */
    while (sem_wait(&start->started) < 0)
        ;
    translator_lock();
    sem_destroy(&start->started);
    free(start);
    return ctx->ts.tid;
}

void emulate_exit_thread(struct guest_context *ctx, int status)
{
    if (translator_live_threads() == 1)
        emulate_exit_group(status); /* the last thread: the process ends */
    /* Block everything: the host handler must not touch this context
     * once it is back on the free list. */
    uint64_t all = ~0ull;
    syscall_raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, 0, 8, 0, 0);
    uint64_t clear_tid = ctx->ts.clear_tid;
    bool is_main = ctx->ts.is_main;
    context_release(ctx);
    translator_unlock();
    /* Only now wake a joiner (CLONE_CHILD_CLEARTID), as the kernel would
     * once the thread is gone: woken before, it found the lock still taken
     * (three futex calls more a thread). */
    if (clear_tid) {
        __atomic_store_n((int *)clear_tid, 0, __ATOMIC_SEQ_CST);
        syscall_raw(SYS_futex, clear_tid, FUTEX_WAKE, 1, 0, 0, 0);
    }
    if (is_main) /* glibc would exit the process from its first thread */
        for (;;)
            syscall_raw(SYS_exit, status, 0, 0, 0, 0, 0);
    pthread_exit(NULL);
}

/* The vfork child's settings. They live on the parent's stack, which stays
 * put while the kernel keeps the parent suspended. */
struct vfork_child {
    struct guest_context *ctx;
    uint64_t flags, newsp, ctid;
};

long dbo_vfork_clone(uint64_t flags, void *child_stack, struct vfork_child *child);

/* Runs in the vfork child, on its own runtime stack but with the parent's
 * context (the %gs base is inherited): the parent's guest state is saved
 * and restored around the clone by emulate_vfork. */
__attribute__((noreturn)) void dbo_vfork_child(struct vfork_child *child)
{
    struct guest_context *ctx = child->ctx;
    ctx->gpr[GPR_RAX] = 0;
    if (child->newsp)
        ctx->gpr[GPR_RSP] = child->newsp;
    ctx->ts.tid = (int)syscall_raw(SYS_gettid, 0, 0, 0, 0, 0, 0);
    if (child->flags & CLONE_CHILD_SETTID)
        *(int *)child->ctid = ctx->ts.tid;
    ctx->ts.clear_tid = (child->flags & CLONE_CHILD_CLEARTID) ? child->ctid : 0;
    translator_run(ctx);
}

/* CLONE_VM|CLONE_VFORK (vfork, posix_spawn): a real shared-memory child, so
 * its writes reach the parent as natively. */
static long emulate_vfork(struct guest_context *ctx, uint64_t flags, uint64_t newsp, uint64_t ptid,
                          uint64_t ctid)
{
    const size_t stack_size = 256 * 1024;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return -EAGAIN;
    size_t saved_size = offsetof(struct guest_context, ibl);
    void *saved = malloc(saved_size);
    memcpy(saved, ctx, saved_size);
    struct vfork_child child = {ctx, flags, newsp, ctid};
    uint64_t clone_flags = flags & ~(uint64_t)(CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID |
                                               CLONE_PARENT_SETTID | CLONE_SETTLS);
    translator_unlock(); /* the child translates while we are suspended */
    long pid = dbo_vfork_clone(clone_flags, (uint8_t *)stack + stack_size, &child);
    translator_lock();
    /* The child ran on this context: put the parent's guest state back, but
     * keep what belongs to the runtime's present (the live-context list,
     * signals that arrived meanwhile). */
    struct guest_context *next = ctx->ts.next;
    uint64_t pending = ctx->pending_signals, epoch = ctx->ts.flush_epoch;
    uint8_t counts[sizeof ctx->ts.pending_count], heads[64], tails[64];
    memcpy(counts, ctx->ts.pending_count, sizeof counts);
    memcpy(heads, ctx->ts.siginfo_head, sizeof heads);
    memcpy(tails, ctx->ts.siginfo_tail, sizeof tails);
    memcpy(ctx, saved, saved_size);
    ctx->ts.next = next;
    ctx->pending_signals = pending;
    ctx->ts.flush_epoch = epoch;
    /* The child's calls rewrote the return stack, and a flush of its may
     * have taken the parent's pads away: start it empty. */
    ctx->ts.return_sp = ctx->ts.return_sp_empty;
    memcpy(ctx->ts.pending_count, counts, sizeof counts);
    memcpy(ctx->ts.siginfo_head, heads, sizeof heads); /* their siginfos, likewise */
    memcpy(ctx->ts.siginfo_tail, tails, sizeof tails);
    free(saved);
    munmap(stack, stack_size);
    if (pid > 0 && (flags & CLONE_PARENT_SETTID))
        *(int *)ptid = (int)pid;
    return pid;
}

long emulate_clone(struct guest_context *ctx, uint64_t flags, uint64_t newsp, uint64_t ptid,
                   uint64_t ctid, uint64_t tls)
{
    if ((flags & CLONE_VM) && (flags & CLONE_VFORK) && !(flags & CLONE_THREAD))
        return emulate_vfork(ctx, flags, newsp, ptid, ctid);
    if ((flags & CLONE_VM) && !(flags & CLONE_VFORK)) {
        if (!(flags & CLONE_THREAD) || !(flags & CLONE_SIGHAND))
            return -EINVAL; /* a shared-memory process: not supported */
        return create_thread(ctx, flags, newsp, ptid, ctid, tls);
    }
    bool plain = (flags & ~(uint64_t)FORK_FLAGS & ~0xffull) == 0 && (flags & 0xff) == SIGCHLD;
    int pipefd[2] = {-1, -1};
    if ((flags & CLONE_VFORK) && vfork_pipe(pipefd) < 0)
        return -EAGAIN;
    /* Host signals wait until the child has dropped what the parent had
     * pending (signals_after_fork): one sent to the child at once stays. */
    uint64_t all = ~0ull, mask;
    syscall_raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, (long)&mask, 8, 0, 0);
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
        translator_after_fork(ctx); /* only this thread lives on */
        signals_after_fork(ctx);
        syscall_raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0, 8, 0, 0);
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
    syscall_raw(SYS_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0, 8, 0, 0);
    if (pipefd[1] >= 0) {
        close(pipefd[1]);
        char c;
        translator_unlock();
        if (pid > 0)
            while (read(pipefd[0], &c, 1) < 0 && errno == EINTR)
                ;
        translator_lock();
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
    translator_flush_perf_map();
    /* A vfork child shares the parent's runtime: leave its lock free. */
    if (translator_lock_held())
        translator_unlock();
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
    if (!guest_vm_accessible(path, 1, PROT_READ) ||
        (argv && !guest_vm_accessible(argv, 8, PROT_READ)) ||
        (envp && !guest_vm_accessible(envp, 8, PROT_READ)))
        return -EFAULT;
    char resolved[4096];
    if (is_self_exe(dirfd, path)) {
        /* In the new process that link would name dbo itself. */
        snprintf(resolved, sizeof resolved, "%s", guest_exe_path);
    } else if (path[0] == '/' || (dirfd == AT_FDCWD && path[0])) {
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
    translator_flush_perf_map();
    translator_unlock(); /* a vfork parent resumes when this succeeds */
    long r = syscall_raw(SYS_execve, (long)dbo_self_path, (long)new_argv, (long)new_envp, 0, 0, 0);
    translator_lock();
    for (size_t i = 0; i < envc; i++)
        if (new_envp[i] != envp[i])
            free(new_envp[i]);
    free(new_envp);
    free(new_argv);
    return r;
}
