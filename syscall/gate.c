/* The syscall gate (DESIGN.md decision 8): every guest `syscall` leaves the
 * cache and arrives here with the guest's registers in the context. Calls
 * the runtime must own are emulated; the rest go to the kernel unchanged. */
#include <asm/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <linux/memfd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loader/loader.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "syscall/syscall_internal.h"
#include "translator/translator.h"

long syscall_raw(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

/* Is `path` this process's /proc/.../exe link? */
bool is_self_exe(int dirfd, const char *path)
{
    if (!guest_vm_accessible(path, 1, PROT_READ))
        return false; /* the kernel will answer EFAULT */
    if (path[0] != '/' && dirfd != AT_FDCWD)
        return false;
    if (!strcmp(path, "/proc/self/exe") || !strcmp(path, "/proc/thread-self/exe"))
        return true;
    char mine[64];
    snprintf(mine, sizeof mine, "/proc/%d/exe", getpid());
    return !strcmp(path, mine);
}

static long emulate_readlink(int dirfd, const char *path, char *buf, long size)
{
    if (!is_self_exe(dirfd, path))
        return syscall_raw(SYS_readlinkat, dirfd, (long)path, (long)buf, size, 0, 0);
    if (size <= 0)
        return -EINVAL;
    long len = (long)strlen(guest_exe_path);
    if (len > size)
        len = size;
    if (!guest_vm_accessible(buf, len, PROT_WRITE))
        return -EFAULT;
    memcpy(buf, guest_exe_path, len);
    return len;
}

/* Calls that follow the /proc/self/exe link must reach the guest's
 * program, not dbo: the path argument is replaced for the kernel. */
/* Is `path` this process's /proc/.../cmdline? */
static bool is_self_cmdline(int dirfd, const char *path)
{
    if (path[0] != '/' && dirfd != AT_FDCWD)
        return false;
    if (!strcmp(path, "/proc/self/cmdline") || !strcmp(path, "/proc/thread-self/cmdline"))
        return true;
    char mine[64];
    snprintf(mine, sizeof mine, "/proc/%d/cmdline", getpid());
    return !strcmp(path, mine);
}

/* The kernel shows dbo's own command line there (changing what it shows
 * needs CAP_SYS_RESOURCE): hand the guest a file with its own argv. */
static long open_guest_cmdline(void)
{
    long fd = syscall_raw(SYS_memfd_create, (long)"cmdline", MFD_CLOEXEC, 0, 0, 0, 0);
    if (fd < 0)
        return fd;
    uint64_t len = guest_cmdline_end - guest_cmdline_start;
    if (syscall_raw(SYS_write, fd, (long)guest_cmdline_start, len, 0, 0, 0) != (long)len ||
        syscall_raw(SYS_lseek, fd, 0, SEEK_SET, 0, 0, 0) != 0) {
        syscall_raw(SYS_close, fd, 0, 0, 0, 0, 0);
        return -EIO;
    }
    return fd;
}

static long with_guest_exe(long nr, int path_arg, int dirfd, int follow, long a[6])
{
    const char *path = (const char *)a[path_arg];
    if (path && (nr == SYS_open || nr == SYS_openat) && guest_cmdline_end &&
        guest_vm_accessible(path, 1, PROT_READ) && is_self_cmdline(dirfd, path)) {
        long fd = open_guest_cmdline();
        int flags = (int)a[path_arg + 1];
        if (fd >= 0 && !(flags & O_CLOEXEC)) /* as the guest asked */
            syscall_raw(SYS_fcntl, fd, F_SETFD, 0, 0, 0, 0);
        return fd;
    }
    if (!path || !follow || !is_self_exe(dirfd, path))
        return syscall_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
    a[path_arg] = (long)guest_exe_path;
    return syscall_raw(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static long emulate_arch_prctl(struct guest_context *ctx, int code, uint64_t addr)
{
    switch (code) {
    case ARCH_SET_FS: ctx->guest_fs = addr; return 0;
    case ARCH_GET_FS:
    case ARCH_GET_GS:
        if (!guest_vm_accessible((void *)addr, 8, PROT_WRITE))
            return -EFAULT;
        *(uint64_t *)addr = code == ARCH_GET_FS ? ctx->guest_fs : ctx->ts.guest_gs;
        return 0;
    case ARCH_SET_GS: ctx->ts.guest_gs = addr; return 0;
    default: return syscall_raw(SYS_arch_prctl, code, addr, 0, 0, 0, 0);
    }
}

/* The calls on a path that the gate's switch below watches for /proc's
 * links to the program: which argument is the path, 1 (the first) or 2
 * (the second, after a directory fd); 0 for other calls. */
static int path_argument(long nr)
{
    switch (nr) {
    case SYS_open:
    case SYS_stat:
    case SYS_access:
    case SYS_readlink: return 1;
    case SYS_openat:
    case SYS_newfstatat:
    case SYS_statx:
    case SYS_faccessat:
    case SYS_faccessat2:
    case SYS_readlinkat: return 2;
    default: return 0;
    }
}

/* The calls the gate's switch below emulates or watches: the rest go to
 * the kernel as they are, and may take the fast path. Keep the two lists
 * in step. */
bool syscall_fast_allowed(long nr)
{
    if (dbo_opts.verbose || nr < 0 || nr >= 512)
        return false; /* --verbose logs every call */
    if (path_argument(nr))
        return false; /* perhaps: see syscall_fast_path_arg */
    switch (nr) {
    case SYS_brk:
    case SYS_mmap:
    case SYS_mprotect:
    case SYS_munmap:
    case SYS_mremap:
    case SYS_madvise:
    case SYS_arch_prctl:
    case SYS_rseq:
    case SYS_rt_sigaction:
    case SYS_rt_sigprocmask:
    case SYS_rt_sigsuspend:
    case SYS_kill:
    case SYS_tgkill:
    case SYS_tkill:
    case SYS_sigaltstack:
    case SYS_rt_sigreturn:
    case SYS_clone:
    case SYS_clone3:
    case SYS_fork:
    case SYS_vfork:
    case SYS_execve:
    case SYS_execveat:
    case SYS_exit:
    case SYS_exit_group:
    case SYS_set_tid_address: return false;
    default: return true;
    }
}

int syscall_fast_path_arg(long nr)
{
    return dbo_opts.verbose ? 0 : path_argument(nr);
}

/* Read by fast_gate.S: 1, the fast path may make this call; 2 or 3, it
 * may if the path in %rdi (2) or %rsi (3) does not start with "/pro"
 * (see syscall_fast_path_arg); 0, the C gate makes it. */
uint8_t syscall_fast_table[512];

void syscall_fast_init(void)
{
    for (long nr = 0; nr < 512; nr++) {
        int path_arg = syscall_fast_path_arg(nr);
        syscall_fast_table[nr] = syscall_fast_allowed(nr) ? 1 : path_arg ? 1 + path_arg : 0;
    }
}

void syscall_fast_finish(struct guest_context *ctx)
{
    uint64_t *r = ctx->gpr;
    long nr = (int)ctx->ts.syscall_nr, ret = (long)r[GPR_RAX];
    if (ret == -EFAULT && translator_unprotect_code()) {
        r[GPR_RAX] = nr; /* again, the slow way: its arguments are still in place */
        syscall_gate(ctx);
        return;
    }
    if (ret == -EINTR && signals_want_restart(ctx, nr)) {
        r[GPR_RAX] = nr;
        ctx->rip -= 2; /* re-execute the syscall instruction after the handler */
        return;
    }
    r[GPR_RCX] = ctx->rip;
    r[GPR_R11] = ctx->rflags;
}

void syscall_gate(struct guest_context *ctx)
{
    uint64_t *r = ctx->gpr;
    /* The kernel reads only eax (as an int): so does the gate, or a number
     * with junk in the upper half would slip past the emulated calls. */
    long nr = (int)r[GPR_RAX];
    long a1 = r[GPR_RDI], a2 = r[GPR_RSI], a3 = r[GPR_RDX], a4 = r[GPR_R10], a5 = r[GPR_R8],
         a6 = r[GPR_R9];
    long ret;
    if (dbo_opts.verbose)
        dbo_log("syscall %s(%#lx, %#lx, %#lx, ...)", syscall_name(nr), a1, a2, a3);

    switch (nr & __X32_SYSCALL_BIT ? -1 : nr) {
    case -1: ret = -ENOSYS; break; /* x32 calls would bypass the emulated ones */
    case SYS_brk: ret = (long)loader_brk(a1); break;
    case SYS_mmap: ret = emulate_mmap(ctx, a1, a2, (int)a3, (int)a4, (int)a5, a6); break;
    case SYS_mprotect: ret = emulate_mprotect(ctx, a1, a2, (int)a3); break;
    case SYS_munmap: ret = emulate_munmap(ctx, a1, a2); break;
    case SYS_mremap: ret = emulate_mremap(ctx, a1, a2, a3, (int)a4, a5); break;
    case SYS_madvise: ret = emulate_madvise(ctx, a1, a2, (int)a3); break;
    case SYS_arch_prctl: ret = emulate_arch_prctl(ctx, (int)a1, a2); break;
    case SYS_rseq: ret = -ENOSYS; break; /* a translated critical section cannot restart */
    case SYS_kill:
    case SYS_tgkill:
    case SYS_tkill: ret = emulate_kill(ctx, nr, a1, a2, a3); break;
    case SYS_open:
    case SYS_stat:
    case SYS_access:
    case SYS_openat:
    case SYS_newfstatat:
    case SYS_statx:
    case SYS_faccessat:
    case SYS_faccessat2: {
        long a[6] = {a1, a2, a3, a4, a5, a6};
        bool at = path_argument(nr) == 2;
        int follow = 1;
        if (nr == SYS_newfstatat || nr == SYS_statx)
            follow = !(a[nr == SYS_statx ? 2 : 3] & AT_SYMLINK_NOFOLLOW);
        if (nr == SYS_openat || nr == SYS_open)
            follow = !(a[nr == SYS_open ? 1 : 2] & O_NOFOLLOW);
        translator_unlock(); /* open may block (fifos) */
        ret = with_guest_exe(nr, at ? 1 : 0, at ? (int)a1 : AT_FDCWD, follow, a);
        translator_lock();
        break;
    }
    case SYS_readlink: ret = emulate_readlink(AT_FDCWD, (const char *)a1, (char *)a2, a3); break;
    case SYS_readlinkat: ret = emulate_readlink((int)a1, (const char *)a2, (char *)a3, a4); break;
    case SYS_rt_sigaction:
        ret = emulate_rt_sigaction(ctx, (int)a1, (const void *)a2, (void *)a3, a4);
        break;
    case SYS_rt_sigprocmask:
        ret = emulate_rt_sigprocmask(ctx, (int)a1, (const uint64_t *)a2, (uint64_t *)a3, a4);
        break;
    case SYS_rt_sigsuspend: ret = emulate_rt_sigsuspend(ctx, (const uint64_t *)a1, a2); break;
    case SYS_sigaltstack: ret = emulate_sigaltstack(ctx, (const void *)a1, (void *)a2); break;
    case SYS_rt_sigreturn:
        emulate_rt_sigreturn(ctx);
        return; /* every register comes from the frame */
    case SYS_clone: ret = emulate_clone(ctx, a1, a2, a3, a4, a5); break;
    case SYS_clone3: ret = emulate_clone3(ctx, (const void *)a1, a2); break;
    case SYS_fork: ret = emulate_clone(ctx, SIGCHLD, 0, 0, 0, 0); break;
    case SYS_vfork: ret = emulate_clone(ctx, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0); break;
    case SYS_execve:
        ret = emulate_execve(ctx, AT_FDCWD, (const char *)a1, (char *const *)a2, (char *const *)a3,
                             0);
        break;
    case SYS_execveat:
        ret = emulate_execve(ctx, (int)a1, (const char *)a2, (char *const *)a3, (char *const *)a4,
                             (int)a5);
        break;
    case SYS_exit: emulate_exit_thread(ctx, (int)a1);
    case SYS_exit_group: emulate_exit_group((int)a1);
    case SYS_set_tid_address:
        /* The runtime thread's own clear-tid word belongs to its libc. */
        ctx->ts.clear_tid = a1;
        ret = ctx->ts.tid;
        break;
    default:
        /* Host calls may block: other threads keep translating meanwhile. */
        translator_unlock();
        ret = syscall_raw(nr, a1, a2, a3, a4, a5, a6);
        translator_lock();
        if (ret == -EFAULT && translator_unprotect_code()) {
            /* Perhaps a buffer on a page we write-protected for its code. */
            translator_unlock();
            ret = syscall_raw(nr, a1, a2, a3, a4, a5, a6);
            translator_lock();
        }
        if (ret == -EINTR && signals_want_restart(ctx, nr)) {
            /* Re-execute the syscall instruction after the handler. */
            ctx->rip -= 2;
            return;
        }
        break;
    }
    r[GPR_RAX] = (uint64_t)ret;
    r[GPR_RCX] = ctx->rip;
    r[GPR_R11] = ctx->rflags;
}
