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
#define ARCH_GET_FS 0x1003
#define SYS_arch_prctl 158

/* SET_FS field: installs the %fs base held at CTX field(%rbx) (rbx = ctx),
 * with wrfsbase or, without FSGSBASE, arch_prctl. Clobbers rax, rdi, rsi,
 * rcx, r11. */
.macro SET_FS field
        cmpq    $0, CTX_USE_FSGSBASE(%rbx)
        je      .Lprctl\@
        mov     \field(%rbx), %rax
        wrfsbase %rax
        jmp     .Ldone\@
.Lprctl\@:
        mov     $SYS_arch_prctl, %eax
        mov     $ARCH_SET_FS, %edi
        mov     \field(%rbx), %rsi
        syscall
.Ldone\@:
.endm

/* The guest's vector state, by hand: a few dozen moves where xsaveopt and
 * xrstor cost 140 ns a round trip here (a tenth of building a fragment;
 * 75 ns of it fxsave/fxrstor alone), into the standard-format XSAVE image
 * at CTX_XSAVE, so that signal frames and new threads read it as ever.
 * MXCSR, xmm0-15, and where XCR0 enables them the upper halves of
 * ymm0-15 and the AVX-512 state (k0-7, upper halves of zmm0-15,
 * zmm16-31). The x87 registers stay in the CPU: the runtime has no x87
 * code (context_fp_sync() copies them into the image when C code reads
 * it). rbx = ctx; rax, rcx, rdx and the flags are clobbered. */
.macro FP_SAVE
        stmxcsr CTX_XSAVE+24(%rbx)
        testb   $4, CTX_XSAVE_MASK(%rbx)       /* AVX? */
        jnz     .Lavx\@
        .irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        movups  %xmm\n, CTX_XSAVE+160+16*\n(%rbx)
        .endr
        jmp     .Ldone\@
.Lavx\@:
        mov     CTX_FP_YMM(%rbx), %eax         /* rax = offset of ymm upper halves */
        .irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        vmovups %xmm\n, CTX_XSAVE+160+16*\n(%rbx)
        vextractf128 $1, %ymm\n, 16*\n(%rbx,%rax)
        .endr
        testb   $0xe0, CTX_XSAVE_MASK(%rbx)    /* AVX-512? */
        jz      .Lupper\@
        mov     CTX_FP_K(%rbx), %eax           /* rax = offset of k0-7 */
        mov     CTX_FP_ZMMH(%rbx), %ecx        /* rcx = of zmm0-15's upper halves */
        mov     CTX_FP_HI16(%rbx), %edx        /* rdx = of zmm16-31 */
        .irp n, 0, 1, 2, 3, 4, 5, 6, 7
        kmovq   %k\n, 8*\n(%rbx,%rax)
        .endr
        .irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        vextractf64x4 $1, %zmm\n, 32*\n(%rbx,%rcx)
        .endr
        .irp n, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
        vmovups %zmm\n, 64*(\n-16)(%rbx,%rdx)
        .endr
        /* saved: are bits 128-511 of zmm0-15 all zero? (zmm0-2 are free now) */
        .irp n, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        vpord   %zmm\n, %zmm0, %zmm0
        .endr
        vextractf64x4 $1, %zmm0, %ymm1         /* bits 256-511 */
        vextractf128 $1, %ymm0, %xmm2          /* bits 128-255 */
        vpor    %ymm2, %ymm1, %ymm1
        vptest  %ymm1, %ymm1
        setz    CTX_FP_CLEAN(%rbx)
        jmp     .Ldone\@
.Lupper\@:                                     /* AVX only: bits 128-255 */
        .irp n, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        vpor    %ymm\n, %ymm0, %ymm0
        .endr
        vextractf128 $1, %ymm0, %xmm0
        vptest  %xmm0, %xmm0
        setz    CTX_FP_CLEAN(%rbx)
.Ldone\@:
.endm

/* The reverse (after fxrstor when the image is new: CTX_FP_RELOAD). The
 * VEX loads of xmm clear the upper bits the inserts then fill. */
.macro FP_RESTORE
        ldmxcsr CTX_XSAVE+24(%rbx)
        testb   $4, CTX_XSAVE_MASK(%rbx)
        jnz     .Lavx\@
        .irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        movups  CTX_XSAVE+160+16*\n(%rbx), %xmm\n
        .endr
        jmp     .Ldone\@
.Lavx\@:
        cmpb    $0, CTX_FP_CLEAN(%rbx)
        je      .Ldirty\@
        .irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        vmovups CTX_XSAVE+160+16*\n(%rbx), %xmm\n
        .endr
        vzeroupper                             /* the upper halves, zero and clean */
        testb   $0xe0, CTX_XSAVE_MASK(%rbx)
        jz      .Ldone\@
        jmp     .Lavx512\@
.Ldirty\@:
        mov     CTX_FP_YMM(%rbx), %eax
        .irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        vmovups CTX_XSAVE+160+16*\n(%rbx), %xmm\n
        vinsertf128 $1, 16*\n(%rbx,%rax), %ymm\n, %ymm\n
        .endr
        testb   $0xe0, CTX_XSAVE_MASK(%rbx)
        jz      .Ldone\@
        mov     CTX_FP_ZMMH(%rbx), %ecx
        .irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
        vinsertf64x4 $1, 32*\n(%rbx,%rcx), %zmm\n, %zmm\n
        .endr
.Lavx512\@:
        mov     CTX_FP_K(%rbx), %eax
        mov     CTX_FP_HI16(%rbx), %edx
        .irp n, 0, 1, 2, 3, 4, 5, 6, 7
        kmovq   8*\n(%rbx,%rax), %k\n
        .endr
        .irp n, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
        vmovups 64*(\n-16)(%rbx,%rdx), %zmm\n
        .endr
.Ldone\@:
.endm

        .text

/* dbo_stub_entry: reached by `jmp *%gs:CTX_STUB_ENTRY` from an exit stub
 * (indirect.c), every register and the flags the guest's:
 *   %gs:CTX_STUB_ID = the exit's id (32 bits)
 * Spills rcx and rdx and goes on into dbo_exit_entry with
 *   %rdx = STUB_ID_BASE + the id (the dispatcher's exit_by_id()). */
        .globl dbo_stub_entry
        .type dbo_stub_entry, @function
dbo_stub_entry:
        mov     %rcx, %gs:CTX_SPILL_RCX
        mov     %rdx, %gs:CTX_SPILL_RDX
        mov     %gs:CTX_STUB_ID, %edx          /* rdx = id, zero-extended */
        lea     -0x80000000(%rdx), %rdx        /* + STUB_ID_BASE, flags untouched */
        .size dbo_stub_entry, .-dbo_stub_entry
        /* on into dbo_exit_entry */

/* dbo_exit_entry: reached by `jmp *%gs:CTX_EXIT_ENTRY` from cache code
 * that leaves with a record, and from dbo_stub_entry.
 *   %rdx        = struct exit_record * describing the exit, or
 *                 STUB_ID_BASE + an exit stub's id
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
        pushq   $0x202                         /* runtime flags: the guest may */
        popfq                                  /* have set AC (alignment check) or DF */
        andq    $~0x100, CTX_RFLAGS(%rcx)      /* TF: only ever our single step */
        mov     %rcx, %rbx                     /* rbx = ctx (callee-saved) */
        /* Vector state (see FP_SAVE), or every component XCR0 enables. */
        cmpl    $0, CTX_FP_XSAVE(%rbx)
        jne     2f
        FP_SAVE
        jmp     3f
2:      mov     CTX_XSAVE_MASK(%rbx), %eax
        mov     CTX_XSAVE_MASK+4(%rbx), %edx
        xsaveopt64 CTX_XSAVE(%rbx)
3:
        /* %fs: save the guest's base, install the runtime's. */
        cmpq    $0, CTX_USE_FSGSBASE(%rbx)     /* without FSGSBASE the guest's */
        je      1f                             /* base is known: only arch_prctl, */
        rdfsbase %rax                          /* which we emulate, sets it */
        mov     %rax, CTX_GUEST_FS(%rbx)
1:      SET_FS  CTX_HOST_FS
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
 * from ctx and jumps into the cache. A signal that arrived after the
 * dispatcher's last look is caught here; one that arrives while this code
 * runs is redirected by the host handler (the guest state is all in ctx). */
        .type resume_guest, @function
        .globl dbo_resume_guest_start
dbo_resume_guest_start:
resume_guest:
        mov     CTX_SIGMASK(%rdi), %rcx
        not     %rcx
        and     CTX_PENDING_SIGS(%rdi), %rcx   /* deliverable signals pending? */
        jz      0f
        mov     %rdi, %rbx
        call    dispatch_signal                /* delivers; rax = new cache pc */
        mov     %rbx, %rdi
        jmp     resume_guest
0:      mov     %rax, CTX_JUMP_TARGET(%rdi)
        mov     %rdi, %rbx                     /* rbx = ctx */
        SET_FS  CTX_GUEST_FS
        cmpl    $0, CTX_FP_RELOAD(%rbx)        /* the image is new, or */
        jne     1f                             /* xsave does it all */
2:      FP_RESTORE
        jmp     3f
1:      cmpl    $0, CTX_FP_XSAVE(%rbx)
        jne     4f
        fxrstor64 CTX_XSAVE(%rbx)              /* x87 (and MXCSR, xmm) */
        movl    $0, CTX_FP_RELOAD(%rbx)
        jmp     2b
4:      mov     CTX_XSAVE_MASK(%rbx), %eax
        mov     CTX_XSAVE_MASK+4(%rbx), %edx
        xrstor64 CTX_XSAVE(%rbx)
3:
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
        .globl dbo_resume_guest_end
dbo_resume_guest_end:
        jmp     *%gs:CTX_JUMP_TARGET
        .size resume_guest, .-resume_guest

/* dbo_signal_entry(sig = %edi, info = %rsi, uc = %rdx): the host handler
 * for every signal the runtime catches. The signal may interrupt
 * translated code, where %fs is the guest's: switch to the runtime's %fs,
 * run the C handler, then install whatever CTX_SIGNAL_FS holds then (the
 * interrupted code's %fs, or the runtime's when the handler redirected the
 * thread into the runtime). */
        .globl dbo_signal_entry
        .type dbo_signal_entry, @function
dbo_signal_entry:
        pushq   $0x202                         /* no AC/DF in runtime code; */
        popfq                                  /* sigreturn restores the flags */
        push    %rbx
        push    %r12
        push    %r13
        push    %r14
        push    %r15                           /* 5 pushes: rsp 16-aligned */
        mov     %gs:CTX_SELF, %rbx             /* rbx = ctx */
        mov     %edi, %r12d                    /* r12 = sig */
        mov     %rsi, %r13                     /* r13 = siginfo */
        mov     %rdx, %r14                     /* r14 = ucontext */
        cmpq    $0, CTX_USE_FSGSBASE(%rbx)
        je      1f
        rdfsbase %rax
        mov     %rax, CTX_SIGNAL_FS(%rbx)
        jmp     2f
1:      mov     $SYS_arch_prctl, %eax          /* without FSGSBASE: ask */
        mov     $ARCH_GET_FS, %edi
        lea     CTX_SIGNAL_FS(%rbx), %rsi
        syscall
2:      SET_FS  CTX_HOST_FS
        mov     %r12d, %edi
        mov     %r13, %rsi
        mov     %r14, %rdx
        call    dbo_handle_signal
        SET_FS  CTX_SIGNAL_FS
        pop     %r15
        pop     %r14
        pop     %r13
        pop     %r12
        pop     %rbx
        ret
        .size dbo_signal_entry, .-dbo_signal_entry

/* dbo_signal_reenter: where a host signal handler sends a thread it took
 * out of the cache. Runs on the thread's runtime stack with the runtime's
 * %fs; the guest's state is already in ctx. */
        .globl dbo_signal_reenter
        .type dbo_signal_reenter, @function
dbo_signal_reenter:
        mov     %gs:CTX_SELF, %rbx             /* rbx = ctx */
        mov     %rbx, %rdi
        call    dispatch_signal                /* rax = cache pc to resume */
        mov     %rbx, %rdi
        jmp     resume_guest
        .size dbo_signal_reenter, .-dbo_signal_reenter

        .section .note.GNU-stack,"",@progbits
