/* Shared between the files of syscall/ only. */
#ifndef DBO_SYSCALL_INTERNAL_H
#define DBO_SYSCALL_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct guest_context;

long emulate_mmap(struct guest_context *ctx, uint64_t addr, uint64_t len, int prot, int flags,
                  int fd, uint64_t off);
long emulate_mprotect(struct guest_context *ctx, uint64_t addr, uint64_t len, int prot);
long emulate_munmap(struct guest_context *ctx, uint64_t addr, uint64_t len);
long emulate_mremap(struct guest_context *ctx, uint64_t old, uint64_t old_len, uint64_t new_len,
                    int flags, uint64_t new_addr);
long emulate_madvise(struct guest_context *ctx, uint64_t addr, uint64_t len, int advice);

long emulate_rt_sigaction(struct guest_context *ctx, int sig, const void *act, void *oact,
                          uint64_t setsize);
long emulate_rt_sigprocmask(struct guest_context *ctx, int how, const uint64_t *set, uint64_t *old,
                            uint64_t setsize);
long emulate_rt_sigsuspend(struct guest_context *ctx, const uint64_t *mask, uint64_t setsize);
long emulate_sigaltstack(struct guest_context *ctx, const void *ss, void *old);
void emulate_rt_sigreturn(struct guest_context *ctx);
/* After a host syscall returned -EINTR: true if the guest's handler for a
 * pending signal asks for the call to be restarted. */
bool signals_want_restart(struct guest_context *ctx, long nr);

/* Is `path` (relative to dirfd) this process's /proc/.../exe link? */
bool is_self_exe(int dirfd, const char *path);
extern char *guest_exe_path;
/* The guest's argv strings on its stack: what /proc/self/cmdline shows. */
extern uint64_t guest_cmdline_start, guest_cmdline_end;

long emulate_clone(struct guest_context *ctx, uint64_t flags, uint64_t newsp, uint64_t ptid,
                   uint64_t ctid, uint64_t tls);
long emulate_clone3(struct guest_context *ctx, const void *args, uint64_t size);
long emulate_execve(struct guest_context *ctx, int dirfd, const char *path, char *const *argv,
                    char *const *envp, int flags);
__attribute__((noreturn)) void emulate_exit_group(int status);
__attribute__((noreturn)) void emulate_exit_thread(struct guest_context *ctx, int status);
bool signal_is_synchronous(int sig);
/* Loads ctx's vector/x87 state from a kernel-format signal-frame image. */
void read_fpstate(struct guest_context *ctx, const uint8_t *fp);
/* Takes the default action of `sig` (death, with a core where due). */
__attribute__((noreturn)) void signal_die_by_default(int sig);

/* Sets up the runtime side of a new thread: %gs, signal stack and mask. */
void signals_init_thread(struct guest_context *ctx);
/* A signal for the guest of ctx, to deliver when it next leaves the
 * runtime (faults.c; also called from the host handler). */
void signals_record_pending(struct guest_context *ctx, int sig, const siginfo_t *info);
/* kill, tgkill and tkill: a signal the calling thread sends itself, with a
 * handler of the guest's and not blocked, is queued here as the kernel
 * would deliver it, without a host signal; any other goes to the kernel. */
long emulate_kill(struct guest_context *ctx, long nr, long a1, long a2, long a3);
/* In a forked child, whose other threads are gone. */
void signals_after_fork(struct guest_context *ctx);

#endif
