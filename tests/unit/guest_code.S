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

/* Two conditional branches, then exit_group(7) when %edi and %esi are
 * nonzero: with --fragment-branches >= 2 a single fragment. */
        .globl guest_branches, guest_branches_end
guest_branches:
        test    %edi, %edi
        jz      guest_exit42
        test    %esi, %esi
        jz      guest_exit42
        mov     $7, %edi
        mov     $231, %eax
        syscall
guest_branches_end:

/* 1000 indirect jumps alternating between two targets exactly 64 KiB
 * apart, so that both want the same indirect-table slot; exit_group(0). */
        .globl guest_slot_pair
guest_slot_pair:
        mov     $1000, %esi
        lea     slot_a(%rip), %r8
        lea     slot_b(%rip), %r9
5:      mov     %r8, %rcx
        test    $1, %esi
        cmovz   %r9, %rcx
        jmp     *%rcx
6:      xor     %edi, %edi
        mov     $231, %eax
        syscall
        .balign 65536
slot_a: dec     %esi
        jnz     5b
        jmp     6b
        .balign 65536
slot_b: dec     %esi
        jnz     5b
        jmp     6b
/* Three targets sharing one indirect-table slot (64 KiB apart), in turn,
 * 1500 jumps: one more than the table's two ways, so one of them is
 * always in the victim table. exit_group(0). */
        .globl guest_slot_triple
guest_slot_triple:
        mov     $1500, %esi
        lea     triple_a(%rip), %r8
        lea     triple_b(%rip), %r9
        lea     triple_c(%rip), %r10
        jmp     *%r8
7:      xor     %edi, %edi
        mov     $231, %eax
        syscall
        .balign 65536
triple_a:
        dec     %esi
        jz      7b
        jmp     *%r9
        .balign 65536
triple_b:
        dec     %esi
        jz      7b
        jmp     *%r10
        .balign 65536
triple_c:
        dec     %esi
        jz      7b
        jmp     *%r8
/* Flags liveness (test_optimizer.c): where each label starts, the status
 * flags are dead (flags_dead_*) or live (flags_live_*). Not run. */
        .globl flags_dead_cmp, flags_dead_after_moves, flags_dead_inc_add, flags_dead_jmp
        .globl flags_dead_call, flags_dead_both_ways, flags_live_jcc, flags_live_inc_jc
        .globl flags_live_adc, flags_live_ret, flags_live_pushf, flags_live_one_way
        .globl flags_live_indirect
flags_dead_cmp:
        cmp     $1, %eax
        ret
flags_dead_after_moves:
        mov     %eax, %ebx
        lea     1(%rbx), %rcx
        test    %ecx, %ecx
        ret
flags_dead_inc_add:
        inc     %eax                           /* all but CF */
        add     $1, %ebx                       /* CF too */
        ret
flags_dead_jmp:
        jmp     flags_dead_cmp
flags_dead_call:
        call    flags_dead_cmp
        ret
flags_dead_both_ways:
        dec     %ecx                           /* all but CF, which both ways write */
        jnz     1f
        sub     $1, %eax
        ret
1:      shl     $1, %eax
        ret
flags_live_jcc:
        jz      1f
1:      ret
flags_live_inc_jc:
        inc     %eax
        jc      1f
1:      ret
flags_live_adc:
        adc     $0, %eax
        ret
flags_live_ret:
        ret
flags_live_pushf:
        pushf
        popf
        cmp     $1, %eax
        ret
flags_live_one_way:
        dec     %ecx
        jnz     1f
        sub     $1, %eax
        ret
1:      adc     $1, %eax                       /* reads CF, which dec left */
        ret
flags_live_indirect:
        jmp     *%rax

/* A loop whose head and whose return point start with an instruction that
 * writes every status flag: traces there count with an add and guard with
 * a cmp. 100 rounds, odd ones call a leaf (+5), even ones add 3; CF, set
 * before the dec, carries into the last adc: exit_group(400 + 1). */
        .globl guest_trace_dead_flags
guest_trace_dead_flags:
        mov     $100, %ecx
        xor     %eax, %eax
1:      test    $1, %ecx
        jz      2f
        call    4f
        cmp     $0, %ecx
        jmp     3f
2:      add     $3, %eax
3:      stc
        dec     %ecx
        jnz     1b
        adc     $0, %eax
        mov     %eax, %edi
        mov     $231, %eax
        syscall
4:      add     $5, %eax
        ret

/* A call and its return on a trace's path, the flags dead where the call
 * returns (a cmp writes them first); on its last round the callee returns
 * elsewhere instead (it writes the address the caller chose over its own),
 * with CF set for the code there, which reads it: exit_group(101) if that
 * code saw CF, 100 if not, 99 if it never got there. */
        .globl guest_trace_ret_elsewhere
guest_trace_ret_elsewhere:
        mov     $100, %ecx
        xor     %eax, %eax
1:      lea     2f(%rip), %rdx
        lea     6f(%rip), %rsi
        cmp     $1, %ecx
        cmove   %rsi, %rdx                     /* the last round: elsewhere */
        call    5f
2:      cmp     $0, %ecx
        dec     %ecx
        jnz     1b
        mov     $99, %edi
        mov     $231, %eax
        syscall
6:      adc     $0, %eax
        mov     %eax, %edi
        mov     $231, %eax
        syscall
5:      inc     %eax
        mov     %rdx, (%rsp)
        stc
        ret

/* A loop head that reads CF: its counter must keep it. Ten rounds, each
 * adding the CF set by the round before: exit_group(10). */
        .globl guest_trace_live_flags
guest_trace_live_flags:
        mov     $10, %ecx
        xor     %eax, %eax
        stc
1:      adc     $0, %eax
        stc
        dec     %ecx
        jnz     1b
        mov     %eax, %edi
        mov     $231, %eax
        syscall

/* Traces (test_optimizer.c): 100 rounds, odd ones call a leaf (+5), even
 * ones add 3: exit_group(400 & 0xff = 144). The path from the loop head in
 * an odd round: top (jnz taken), odd (call), leaf (ret), next (jnz loop). */
        .globl guest_trace_loop, guest_trace_top, guest_trace_even, guest_trace_odd
        .globl guest_trace_next, guest_trace_leaf
        .balign 64
guest_trace_loop:
        mov     $100, %ecx
        xor     %eax, %eax
guest_trace_top:
        test    $1, %ecx
        jnz     guest_trace_odd
guest_trace_even:
        add     $3, %eax
        jmp     guest_trace_next
guest_trace_odd:
        call    guest_trace_leaf
guest_trace_next:
        dec     %ecx
        jnz     guest_trace_top
        movzbl  %al, %edi
        mov     $231, %eax
        syscall
        .balign 64
guest_trace_leaf:
        add     $5, %eax
        ret

/* An indirect jump whose target alternates, with the carry flag live
 * across it: a trace's guard for one target misses every other round and
 * must keep the flags. 100 rounds of +1+CF or +3+CF with CF set:
 * exit_group((50*2 + 50*4) & 0xff = 44). */
        .globl guest_trace_alternate
guest_trace_alternate:
        mov     $100, %ecx
        xor     %eax, %eax
        lea     7f(%rip), %r8
        lea     8f(%rip), %r9
6:      mov     %r8, %rdx
        test    $1, %ecx
        cmovz   %r9, %rdx
        stc
        jmp     *%rdx
7:      adc     $1, %eax
        jmp     9f
8:      adc     $3, %eax
9:      dec     %ecx
        jnz     6b
        movzbl  %al, %edi
        mov     $231, %eax
        syscall

/* System calls through the gate's fast path, the number known when
 * translated and not: 100 getppid calls each way must agree;
 * exit_group(0) if they do, 1 if not. */
        .globl guest_fast_syscalls
guest_fast_syscalls:
        mov     $100, %ebx
        mov     $110, %r12d                    /* getppid */
1:      mov     $110, %eax
        syscall
        mov     %rax, %r13
        mov     %r12d, %eax
        syscall
        cmp     %rax, %r13
        jne     2f
        dec     %ebx
        jnz     1b
        xor     %edi, %edi
        mov     $231, %eax
        syscall
2:      mov     $1, %edi
        mov     $231, %eax
        syscall

/* cpuid: leaf 0 asked 200 times with junk in the registers' upper
 * halves must give the first answer each time, zero-extended, with the
 * flags kept. exit_group(42) if so. */
        .globl guest_cpuid
guest_cpuid:
        xor     %eax, %eax
        xor     %ecx, %ecx
        cpuid
        mov     %eax, %r12d                    /* r12-r15: the first answer */
        mov     %ebx, %r13d
        mov     %ecx, %r14d
        mov     %edx, %r15d
        mov     $200, %ebp
1:      movabs  $0xdead000000000000, %rax
        movabs  $0xbeef000000000000, %rcx
        mov     $-1, %rbx
        mov     $-1, %rdx
        stc                                    /* cpuid leaves flags alone */
        cpuid
        jnc     2f
        cmp     %rax, %r12
        jne     2f
        cmp     %rbx, %r13
        jne     2f
        cmp     %rcx, %r14
        jne     2f
        cmp     %rdx, %r15
        jne     2f
        dec     %ebp
        jnz     1b
        mov     $42, %edi
        mov     $231, %eax
        syscall
2:      mov     $1, %edi
        mov     $231, %eax
        syscall

/* Calls and returns that do not pair, for the return stack: a callee
 * that drops its return address, a return without a call (which then
 * finds that stale entry), a recursion deeper than the return stack holds
 * (RETURN_STACK_SIZE / 8 frames), then plain calls again. exit_group(42)
 * if every step came out right. Runs on a 2 MiB stack of its own. */
        .globl guest_return_stack
guest_return_stack:
        lea     deep_stack_end(%rip), %rsp
        xor     %ebx, %ebx                     /* steps done */
        call    drop_return                    /* comes back at 1f, not here */
        jmp     rs_fail
1:      inc     %ebx                           /* 1 */
        lea     2f(%rip), %rax
        push    %rax
        ret                                    /* a return without a call */
        jmp     rs_fail
2:      inc     %ebx                           /* 2 */
        mov     $150000, %ecx
        xor     %r12d, %r12d
        call    deep
        cmp     $149999, %r12d
        jne     rs_fail
        inc     %ebx                           /* 3 */
        mov     $1000, %r13d
3:      call    plain
        dec     %r13d
        jnz     3b
        cmp     $1003, %ebx                    /* 3 + 1000 */
        jne     rs_fail
        mov     $42, %edi
        mov     $231, %eax
        syscall
rs_fail:
        mov     $1, %edi
        mov     $231, %eax
        syscall
drop_return:
        add     $8, %rsp
        jmp     1b
deep:   dec     %ecx
        jz      4f
        call    deep
        inc     %r12d
4:      ret
plain:  inc     %ebx
        ret

/* A position-independent switch on eight cases, 1024 jumps through its
 * table (movslq; add; jmp *%rax: a jump-table site); exit_group(0). */
        .globl guest_table_jump
guest_table_jump:
        mov     $1024, %esi
        lea     jt_table(%rip), %rdx
1:      mov     %esi, %eax
        and     $7, %eax
        movslq  (%rdx,%rax,4), %rax
        add     %rdx, %rax
        jmp     *%rax
jt_case0: dec   %esi
        jnz     1b
        jmp     jt_done
jt_case1: dec   %esi
        jnz     1b
        jmp     jt_done
jt_case2: dec   %esi
        jnz     1b
        jmp     jt_done
jt_case3: dec   %esi
        jnz     1b
        jmp     jt_done
jt_case4: dec   %esi
        jnz     1b
        jmp     jt_done
jt_case5: dec   %esi
        jnz     1b
        jmp     jt_done
jt_case6: dec   %esi
        jnz     1b
        jmp     jt_done
jt_case7: dec   %esi
        jnz     1b
jt_done: xor    %edi, %edi
        mov     $231, %eax
        syscall
        .balign 4
jt_table:
        .long   jt_case0 - jt_table, jt_case1 - jt_table, jt_case2 - jt_table
        .long   jt_case3 - jt_table, jt_case4 - jt_table, jt_case5 - jt_table
        .long   jt_case6 - jt_table, jt_case7 - jt_table
/* The same through a 258-case table, alternating between cases 1 and 257,
 * whose index bytes are equal: two targets for one site slot, 1024 jumps;
 * exit_group(0), or 1 if a jump went to the wrong case. */
        .globl guest_table_thrash
guest_table_thrash:
        mov     $1024, %esi
        lea     th_table(%rip), %rdx
2:      mov     %esi, %eax
        and     $1, %eax
        shl     $8, %eax
        inc     %eax                           /* 1 or 257 */
        mov     %eax, %edi
        movslq  (%rdx,%rax,4), %rax
        add     %rdx, %rax
        jmp     *%rax
th_1:   cmp     $1, %edi
        jne     th_bad
        dec     %esi
        jnz     2b
        jmp     jt_done
th_257: cmp     $257, %edi
        jne     th_bad
        dec     %esi
        jnz     2b
        jmp     jt_done
th_bad: mov     $1, %edi
        mov     $231, %eax
        syscall
        .balign 4
th_table:
        .long   th_bad - th_table, th_1 - th_table
        .rept   255
        .long   th_bad - th_table
        .endr
        .long   th_257 - th_table

/* A loop whose head is inside the fragment that starts before it (which
 * goes on past the jnz): the back edge enters that fragment's code at the
 * head, an inner entry; guest_inner_jump jumps to the same head from
 * elsewhere. 3 x 14 or 28 + 14: exit_group(42). */
        .globl guest_inner, guest_inner_loop, guest_inner_jump
guest_inner:
        mov     $3, %ecx
        xor     %edi, %edi
guest_inner_loop:
        add     $14, %edi
        dec     %ecx
        jnz     guest_inner_loop
        jmp     inner_exit
guest_inner_jump:
        mov     $1, %ecx
        mov     $28, %edi
        jmp     guest_inner_loop
inner_exit:
        mov     $231, %eax
        syscall

/* guest_unreached: an instruction dbo cannot translate (int $0x80) on
 * the fall-through path of a branch that is always taken: the fragment
 * stops before it, and it never runs: exit_group(42). */
        .globl guest_unreached
guest_unreached:
        mov     $42, %edi
        test    %edi, %edi
        jnz     1f
        int     $0x80
1:      mov     $231, %eax
        syscall

        .globl guest_code_end
guest_code_end:
        .balign 4096

        .bss
        .balign 16
deep_stack:
        .skip   2 << 20
deep_stack_end:
        .section .note.GNU-stack,"",@progbits
