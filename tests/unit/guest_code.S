/* Guest code for the translator's unit tests. It lives in .data, so the
 * host can never execute it in place: only its translation runs. Each
 * routine ends with exit_group(status) so a forked test child reports what
 * it computed through its exit status. */
        .data
        .balign 4096
        .globl guest_code_start
guest_code_start:

/* exit_group(42) */
        .globl guest_exit42
guest_exit42:
        mov     $42, %edi
        mov     $231, %eax
        syscall

/* A rip-relative load must see the original data: exit_group(value). */
        .globl guest_riprel
guest_riprel:
        mov     guest_value(%rip), %edi
        mov     $231, %eax
        syscall

/* Flags survive indirect branches (miss and hit paths) and calls: sum the
 * carry flag over 5 indirect jumps taken with CF=1; expects 5. */
        .globl guest_flags
guest_flags:
        xor     %edi, %edi
        mov     $5, %esi
1:      lea     2f(%rip), %rcx
        stc
        jmp     *%rcx
2:      adc     $0, %edi
        call    3f
        dec     %esi
        jnz     1b
        mov     $231, %eax
        syscall
3:      ret

/* Recursion: fib(15) = 610, exit status 610 & 0xff = 98. */
        .globl guest_fib
guest_fib:
        mov     $15, %edi
        call    fib
        mov     %eax, %edi
        mov     $231, %eax
        syscall
fib:    cmp     $2, %edi
        jb      4f
        push    %rbx
        push    %rdi
        dec     %edi
        call    fib
        mov     %eax, %ebx
        pop     %rdi
        sub     $2, %edi
        call    fib
        add     %ebx, %eax
        pop     %rbx
        ret
4:      mov     %edi, %eax
        ret

        .globl guest_value
guest_value:
        .long   7
        .globl guest_code_end
guest_code_end:
        .balign 4096
        .section .note.GNU-stack,"",@progbits
