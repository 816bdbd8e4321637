/* Context switch between translated guest code and the runtime.
 *
 * %gs base always points at the current thread's struct guest_context
 * (translator.h gives the offsets). While translated code runs, every
 * general register, the flags, the vector state and the %fs base are the
 * guest's; the runtime's C code needs its own %fs (glibc's TLS) and its own
 * stack, and may clobber any vector register.
 */
#include "translator/translator.h"

#define ARCH_SET_FS 0x1002
#define SYS_arch_prctl 158

        .text

/* dbo_exit_entry: reached by `jmp *%gs:CTX_EXIT_ENTRY` from an exit stub.
 *   %rdx        = struct exit_record * describing the exit
 *   %gs:SPILL_RCX, %gs:SPILL_RDX = the guest's %rcx and %rdx
 *   every other register and the flags = the guest's
 */
        .globl dbo_exit_entry
        .type dbo_exit_entry, @function
dbo_exit_entry:
        mov     %gs:CTX_SELF, %rcx             /* rcx = ctx */
        mov     %rdx, CTX_EXIT_RECORD(%rcx)
        mov     %rax, CTX_GPR+8*GPR_RAX(%rcx)
        mov     %rbx, CTX_GPR+8*GPR_RBX(%rcx)
        mov     %rsp, CTX_GPR+8*GPR_RSP(%rcx)
        mov     %rbp, CTX_GPR+8*GPR_RBP(%rcx)
        mov     %rsi, CTX_GPR+8*GPR_RSI(%rcx)
        mov     %rdi, CTX_GPR+8*GPR_RDI(%rcx)
        mov     %r8,  CTX_GPR+8*GPR_R8(%rcx)
        mov     %r9,  CTX_GPR+8*GPR_R9(%rcx)
        mov     %r10, CTX_GPR+8*GPR_R10(%rcx)
        mov     %r11, CTX_GPR+8*GPR_R11(%rcx)
        mov     %r12, CTX_GPR+8*GPR_R12(%rcx)
        mov     %r13, CTX_GPR+8*GPR_R13(%rcx)
        mov     %r14, CTX_GPR+8*GPR_R14(%rcx)
        mov     %r15, CTX_GPR+8*GPR_R15(%rcx)
        mov     CTX_SPILL_RCX(%rcx), %rax
        mov     %rax, CTX_GPR+8*GPR_RCX(%rcx)
        mov     CTX_SPILL_RDX(%rcx), %rax
        mov     %rax, CTX_GPR+8*GPR_RDX(%rcx)
        /* Off the guest stack before anything is pushed: the guest may keep
         * live data in its red zone below %rsp. */
        mov     CTX_HOST_RSP(%rcx), %rsp
        pushfq
        popq    CTX_RFLAGS(%rcx)
        mov     %rcx, %rbx                     /* rbx = ctx (callee-saved) */
        /* Vector and x87 state: all components enabled in XCR0. */
        mov     CTX_XSAVE_MASK(%rbx), %eax
        mov     CTX_XSAVE_MASK+4(%rbx), %edx
        xsave64 CTX_XSAVE(%rbx)
        /* %fs: save the guest's base, install the runtime's. */
        cmpq    $0, CTX_USE_FSGSBASE(%rbx)
        je      1f
        rdfsbase %rax
        mov     %rax, CTX_GUEST_FS(%rbx)
        mov     CTX_HOST_FS(%rbx), %rax
        wrfsbase %rax
        jmp     2f
1:      mov     $SYS_arch_prctl, %eax          /* fs base of the guest is */
        mov     $ARCH_SET_FS, %edi             /* known: only arch_prctl, */
        mov     CTX_HOST_FS(%rbx), %rsi        /* which we emulate, sets it */
        syscall
2:      cld
        mov     %rbx, %rdi
        call    dispatch                       /* rax = cache pc to resume */
        mov     %rbx, %rdi
        jmp     resume_guest
        .size dbo_exit_entry, .-dbo_exit_entry

/* dbo_enter_guest(ctx = %rdi, cache_pc = %rsi): first entry into the cache
 * from C. The runtime stack below here becomes the stack every later exit
 * runs on; this frame is never returned to. */
        .globl dbo_enter_guest
        .type dbo_enter_guest, @function
dbo_enter_guest:
        and     $-16, %rsp
        mov     %rsp, CTX_HOST_RSP(%rdi)       /* 16-aligned: `call` then */
        mov     %rsi, %rax                     /* leaves rsp = 8 mod 16 */
        jmp     resume_guest
        .size dbo_enter_guest, .-dbo_enter_guest

/* resume_guest: %rdi = ctx, %rax = cache pc. Restores the guest's state
 * from ctx and jumps into the cache. */
        .type resume_guest, @function
resume_guest:
        mov     %rax, CTX_JUMP_TARGET(%rdi)
        mov     %rdi, %rbx                     /* rbx = ctx */
        cmpq    $0, CTX_USE_FSGSBASE(%rbx)
        je      1f
        mov     CTX_GUEST_FS(%rbx), %rax
        wrfsbase %rax
        jmp     2f
1:      mov     $SYS_arch_prctl, %eax
        mov     $ARCH_SET_FS, %edi
        mov     CTX_GUEST_FS(%rbx), %rsi
        syscall
2:      mov     CTX_XSAVE_MASK(%rbx), %eax
        mov     CTX_XSAVE_MASK+4(%rbx), %edx
        xrstor64 CTX_XSAVE(%rbx)
        mov     %rbx, %rcx                     /* rcx = ctx */
        pushq   CTX_RFLAGS(%rcx)
        popfq
        mov     CTX_GPR+8*GPR_RAX(%rcx), %rax
        mov     CTX_GPR+8*GPR_RDX(%rcx), %rdx
        mov     CTX_GPR+8*GPR_RBX(%rcx), %rbx
        mov     CTX_GPR+8*GPR_RSP(%rcx), %rsp
        mov     CTX_GPR+8*GPR_RBP(%rcx), %rbp
        mov     CTX_GPR+8*GPR_RSI(%rcx), %rsi
        mov     CTX_GPR+8*GPR_RDI(%rcx), %rdi
        mov     CTX_GPR+8*GPR_R8(%rcx), %r8
        mov     CTX_GPR+8*GPR_R9(%rcx), %r9
        mov     CTX_GPR+8*GPR_R10(%rcx), %r10
        mov     CTX_GPR+8*GPR_R11(%rcx), %r11
        mov     CTX_GPR+8*GPR_R12(%rcx), %r12
        mov     CTX_GPR+8*GPR_R13(%rcx), %r13
        mov     CTX_GPR+8*GPR_R14(%rcx), %r14
        mov     CTX_GPR+8*GPR_R15(%rcx), %r15
        mov     CTX_GPR+8*GPR_RCX(%rcx), %rcx
        jmp     *%gs:CTX_JUMP_TARGET
        .size resume_guest, .-resume_guest

/* dbo_async_signal_handler(sig = %edi, info = %rsi, uc = %rdx): the host
 * handler for every signal the guest handles. It may interrupt translated
 * code, where %fs is the guest's, so it touches no C and no TLS: it records
 * the siginfo in the context and sets the signal's pending bit. The
 * dispatcher delivers it to the guest. */
        .globl dbo_async_signal_handler
        .type dbo_async_signal_handler, @function
dbo_async_signal_handler:
        mov     %gs:CTX_SELF, %rax             /* rax = ctx */
        mov     %edi, %ecx
        sub     $1, %ecx                       /* rcx = sig - 1 */
        mov     %rcx, %rdx
        shl     $7, %rdx                       /* 128 bytes per siginfo */
        lea     CTX_SIGINFO(%rax,%rdx), %rdi   /* rdi = &ctx->siginfo[sig-1] */
        mov     $16, %r8d
1:      mov     (%rsi), %r9                    /* copy 16 quadwords */
        mov     %r9, (%rdi)
        add     $8, %rsi
        add     $8, %rdi
        dec     %r8d
        jnz     1b
        mov     $1, %edx
        shl     %cl, %rdx                      /* rdx = 1 << (sig-1) */
        lock or %rdx, CTX_PENDING_SIGS(%rax)
        ret
        .size dbo_async_signal_handler, .-dbo_async_signal_handler

        .section .note.GNU-stack,"",@progbits
