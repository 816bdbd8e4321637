/* long dbo_vfork_clone(flags = %rdi, child_stack = %rsi, child = %rdx)
 *
 * clone(flags) for a guest vfork (CLONE_VM|CLONE_VFORK): the child shares
 * this address space, runtime included, while the kernel keeps the parent
 * suspended. The child must not run on the parent's runtime stack (the
 * parent's frames are live there), so it starts on child_stack and calls
 * dbo_vfork_child(child), which never returns. The parent returns the pid. */
        .text
        .globl dbo_vfork_clone
        .type dbo_vfork_clone, @function
dbo_vfork_clone:
        mov     %rdx, %r9               /* r9 = child: survives the syscall */
        xor     %edx, %edx              /* no parent_tid */
        xor     %r10d, %r10d            /* no child_tid */
        xor     %r8d, %r8d              /* no tls */
        mov     $56, %eax               /* clone */
        syscall
        test    %rax, %rax
        jnz     1f
        /* child: rsp = child_stack (16-aligned), r9 = child */
        mov     %r9, %rdi
        call    dbo_vfork_child
        ud2
1:      ret
        .size dbo_vfork_clone, .-dbo_vfork_clone
        .section .note.GNU-stack,"",@progbits
