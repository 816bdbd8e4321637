/* The syscall gate's fast path (DESIGN.md decision 8): a call that the
 * gate would hand to the kernel unchanged, with its number known when it
 * was translated (syscall_fast_allowed), is made here, from runtime code,
 * without the full exit into C: no vector state to save, no lock.
 *
 * Entered by `jmp *%gs:CTX_SYSCALL_ENTRY` from the cache:
 *   %rax              = the call's number
 *   %rdi %rsi %rdx %r10 %r8 %r9 = its arguments (the guest's registers)
 *   %gs:CTX_SYSCALL_RETURN = `cont`, the cache code to go back to, which
 *                      sets the guest's %rcx and goes on after the call;
 *                      15 bytes before it, `slow` does the same through
 *                      the dispatcher (EXIT_SYSCALL_DONE); 33 bytes before
 *                      it, `full` leaves for the C gate before the call
 *                      (EXIT_SYSCALL)
 *   %gs:SPILL_RCX, %gs:SPILL_RDX = the guest's rcx and rdx (for `full`, and
 *                      for a signal that takes the thread out before the call)
 *   %rcx              = free; %r11 the guest's
 * Nothing is pushed: the guest's stack (and red zone) stays untouched, and
 * no flag is changed (jrcxz and lea only): after the call %r11 holds the
 * flags as the kernel gives them, like natively.
 *
 * A host signal that arrives while this runs takes the thread out before
 * the call, or sends it the slow way after it (faults.c); one that arrived
 * before is seen by the check after the call. */
#include "translator/translator.h"

#define EINTR 4
#define EFAULT 14

        .text

/* dbo_syscall_check: the same entry, for a call whose number the
 * translator did not know: the fast path if syscall_fast_table allows it,
 * else the full gate. Needs BMI2 (shrx leaves the flags alone); without
 * it, CTX_SYSCALL_CHECK points at dbo_syscall_full instead. */
        .globl dbo_syscall_fast_start
dbo_syscall_fast_start:
        .globl dbo_syscall_check
        .type dbo_syscall_check, @function
dbo_syscall_check:
        mov     $9, %ecx
        shrx    %rcx, %rax, %rcx               /* rcx = nr / 512 */
        jrcxz   1f
        jmp     dbo_syscall_full
1:      lea     syscall_fast_table(%rip), %rcx
        movzbl  (%rcx,%rax), %ecx
        jrcxz   dbo_syscall_full
        lea     -1(%rcx), %rcx                 /* 1: fast */
        jrcxz   dbo_syscall_fast
        lea     -1(%rcx), %rcx                 /* 2: the path in rdi */
        jrcxz   2f
        mov     %rsi, %rcx                     /* 3: the path in rsi */
        jmp     3f
2:      mov     %rdi, %rcx
        /* rcx = the path. One that starts with "/pro" may be one of the
         * links to /proc/.../exe or cmdline that the C gate answers for
         * the guest's program. Reading it may fault (a bad pointer, or a
         * short string at a page's end): faults.c then sends the thread
         * to dbo_syscall_full, and the C gate answers. */
3:      .globl dbo_syscall_path_load
dbo_syscall_path_load:
        mov     (%rcx), %ecx
        lea     -0x6f72702f(%rcx), %rcx        /* "/pro", little-endian */
        jrcxz   dbo_syscall_full
        jmp     dbo_syscall_fast
        .size dbo_syscall_check, .-dbo_syscall_check

        .globl dbo_syscall_full
        .type dbo_syscall_full, @function
dbo_syscall_full:
        mov     %gs:CTX_SYSCALL_RETURN, %rcx
        lea     -33(%rcx), %rcx
        jmp     *%rcx
        .size dbo_syscall_full, .-dbo_syscall_full

        .globl dbo_syscall_fast
        .type dbo_syscall_fast, @function
dbo_syscall_fast:
        mov     %rax, %gs:CTX_SYSCALL_NR
        mov     %gs:CTX_FAST_SYSCALLS, %rcx    /* count it (for --stats) */
        lea     1(%rcx), %rcx
        mov     %rcx, %gs:CTX_FAST_SYSCALLS
        movq    $1, %gs:CTX_SYSCALL_STATE      /* in the call: see below */
        syscall                                /* rax = result */
        .globl dbo_syscall_fast_made
dbo_syscall_fast_made:
        /* A flush while the call blocked may have found the thread here
         * (state 1) and made the state 2: the cache code it came from is
         * retired, and the thread must take the slow way to the
         * dispatcher from there, touching no other retired code (which
         * can then be freed; see maybe_free_retired). */
        mov     $0, %ecx
        xchg    %rcx, %gs:CTX_SYSCALL_STATE    /* rcx = 1, or 2: flushed */
        lea     -2(%rcx), %rcx
        jrcxz   2f
        mov     %gs:CTX_PENDING_SIGS, %rcx     /* a signal to deliver now? */
        jrcxz   1f
        jmp     2f
1:      lea     EINTR(%rax), %rcx              /* interrupted: restart or not */
        jrcxz   2f
        lea     EFAULT(%rax), %rcx             /* perhaps a write-protected */
        jrcxz   2f                             /* code page as its buffer */
        jmp     *%gs:CTX_SYSCALL_RETURN
2:      mov     %gs:CTX_SYSCALL_RETURN, %rcx   /* slow: the runtime decides */
        lea     -15(%rcx), %rcx
        jmp     *%rcx
        .size dbo_syscall_fast, .-dbo_syscall_fast
        .globl dbo_syscall_fast_end
dbo_syscall_fast_end:

        .section .note.GNU-stack,"",@progbits
