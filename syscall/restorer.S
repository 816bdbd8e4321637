/* The host restorer for the runtime's signal handlers: the kernel's
 * x86-64 sigaction requires SA_RESTORER; the handler's `ret` lands here
 * with %rsp at the kernel's ucontext. */
        .text
        .globl dbo_host_restorer
        .type dbo_host_restorer, @function
dbo_host_restorer:
        mov     $15, %eax               /* rt_sigreturn */
        syscall
        .size dbo_host_restorer, .-dbo_host_restorer
        .section .note.GNU-stack,"",@progbits
