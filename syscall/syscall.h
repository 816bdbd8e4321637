/* Syscall gate: every guest system call passes through here; the runtime
 * emulates what it must own (memory, fs/gs, signals, processes) and keeps a
 * record of the guest's memory map. */
#ifndef DBO_SYSCALL_H
#define DBO_SYSCALL_H

#include <stdbool.h>
#include <stdint.h>

struct guest_context;

/* Executes the system call described by ctx (rax, rdi, rsi, rdx, r10, r8, r9)
 * and leaves the result in ctx, with rcx/r11 set as the kernel does. */
void syscall_gate(struct guest_context *ctx);

/* The gate's fast path (fast_gate.S): for calls the gate would hand to
 * the kernel unchanged, when the translator knows the number. */
bool syscall_fast_allowed(long nr);
/* Calls on a path that the gate passes on unchanged unless the path is
 * one of /proc's links to the program (/proc/self/exe, .../cmdline): the
 * fast path may make them when the path does not start with "/pro".
 * Which argument is the path: 1 (%rdi), 2 (%rsi), 0 for other calls. */
int syscall_fast_path_arg(long nr);
/* Fills the table the fast path consults for numbers found at run time. */
void syscall_fast_init(void);
/* The fast path made a call whose outcome needs the runtime (EXIT_SYSCALL_DONE):
 * restart it, redo it, or just set rcx/r11; ctx->rip is after the call. */
void syscall_fast_finish(struct guest_context *ctx);
void dbo_syscall_fast(void), dbo_syscall_check(void), dbo_syscall_full(void);
void dbo_syscall_path_load(void); /* its read of a path, which may fault */
/* code range labels: all of it, and from just after its syscall instruction */
void dbo_syscall_fast_start(void), dbo_syscall_fast_made(void), dbo_syscall_fast_end(void);

/* Raw system call from runtime code. */
long syscall_raw(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

/* Guest memory map: what the guest asked for, including PROT_EXEC (which
 * the real mapping never carries). */
void guest_vm_record(uint64_t start, uint64_t len, int prot);
void guest_vm_forget(uint64_t start, uint64_t len);
bool guest_vm_executable(uint64_t addr);
/* The guest's protection of the page at addr, or -1 if it has none there.
 * GUEST_VM_SHARED marks a MAP_SHARED mapping (another view may alias it). */
int guest_vm_prot(uint64_t addr);
#define GUEST_VM_SHARED 0x1000000
/* Bytes readable from addr within executable guest memory (0 if none). */
uint64_t guest_vm_exec_extent(uint64_t addr);
/* Whether the guest may access [ptr, ptr+len) with `prot` (PROT_READ,
 * PROT_WRITE): emulated calls answer EFAULT instead of faulting. */
bool guest_vm_accessible(const void *ptr, uint64_t len, int prot);
/* mmap protection the host mapping gets for a guest protection. */
int guest_vm_host_prot(int guest_prot);

/* Signals: installs host handlers, delivers pending guest signals. */
void signals_init(void);
/* Threads: finds where glibc keeps a pthread's tid (process.c). */
void process_init(void);
/* Builds a guest signal frame if a signal is pending and unblocked. */
void signals_deliver_pending(struct guest_context *ctx);
/* After delivery: a sigsuspend mask that no handler consumed goes away. */
void signals_end_sigsuspend(struct guest_context *ctx);

/* Name of a syscall number, for logs and --stats. */
const char *syscall_name(long nr);

#endif
