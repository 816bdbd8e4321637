/* The indirect table's victim table (struct guest_context's ibl_victim),
 * and the miss stubs of proven jump-table sites (at the end).
 *
 * The victim table (struct guest_context's ibl_victim):
 * a lookup that missed in both ways of the thread's table comes here
 * before it leaves for the dispatcher, from the cold code of its site
 * (translator/indirect.c) or from the return stack's lookup. The victim
 * table holds what the dispatcher pushed out of the table to make room,
 * in the same two ways: a hit costs a few instructions and a jump, where
 * a round trip through the dispatcher costs a microsecond (cc1 took
 * 125 000 of them for targets the table had held).
 *
 * On entry:
 *   %rdx              = the guest target
 *   %rcx              = free
 *   %gs:SPILL_RCX/RDX = the guest's rcx and rdx
 *   %gs:CTX_IND_SITE  = the exit record to hand the dispatcher on a miss
 * Flags: all the guest's, untouched (movzwl, lea and jrcxz only). */
#include "translator/translator.h"

        .text
        .globl dbo_victim_lookup_start
dbo_victim_lookup_start:

        .globl dbo_victim_lookup
        .type dbo_victim_lookup, @function
dbo_victim_lookup:
        TWO_WAY_PROBE CTX_IBL_VICTIM, 1f, 2f
3:      mov     %rdx, %gs:CTX_IND_TARGET       /* a miss: the dispatcher finds it */
        mov     %gs:CTX_IND_SITE, %rdx
        jmp     *%gs:CTX_EXIT_ENTRY
1:      mov     %gs:CTX_VICTIM_COUNTDOWN, %rcx
        lea     -1(%rcx), %rcx
        mov     %rcx, %gs:CTX_VICTIM_COUNTDOWN
        jrcxz   4f
        mov     %gs:CTX_IND_HITS, %rcx         /* counted as the table's hits */
        lea     1(%rcx), %rcx
        mov     %rcx, %gs:CTX_IND_HITS
        movzwl  %dx, %ecx
        lea     (%rcx,%rcx), %rcx
        mov     %gs:CTX_IBL_VICTIM+8(,%rcx,8), %rcx /* the target's indirect entry */
        mov     %gs:CTX_SPILL_RDX, %rdx
        jmp     *%rcx                          /* which restores rcx */
2:      mov     %gs:CTX_VICTIM_COUNTDOWN, %rcx
        lea     -1(%rcx), %rcx
        mov     %rcx, %gs:CTX_VICTIM_COUNTDOWN
        jrcxz   4f
        mov     %gs:CTX_IND_HITS, %rcx
        lea     1(%rcx), %rcx
        mov     %rcx, %gs:CTX_IND_HITS
        movzwl  %dx, %ecx
        lea     (%rcx,%rcx), %rcx
        mov     %gs:CTX_IBL_VICTIM+24(,%rcx,8), %rcx
        mov     %gs:CTX_SPILL_RDX, %rdx
        jmp     *%rcx
4:      mov     $VICTIM_PROMOTE_EVERY, %ecx    /* this one goes back to the table */
        mov     %rcx, %gs:CTX_VICTIM_COUNTDOWN
        jmp     3b

/* The miss stubs of proven jump-table sites (table_jump.c): an empty
 * slot of site S, for a jump whose target is in register R, leads to
 * dbo_site_miss_stubs + (S * 16 + R) * 32, which names the site and goes
 * on to the register's stub. A stub is never rewritten: code of a site
 * since flushed may still reach it. On entry:
 *   %rcx              = the slot's key (the table index)
 *   %gs:SPILL_RCX     = the guest's rcx; every other register the guest's
 * Leaves for the dispatcher, which fills the slot; flags untouched. */
        .balign 32
        .globl dbo_site_miss_stubs
dbo_site_miss_stubs:
        .set site, 0
        .rept MAX_SITES
        .irp reg, rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15
        .balign 32
        movl    $site, %gs:CTX_SITE_MISS+4
        jmp     site_miss_\reg
        .endr
        .set site, site + 1
        .endr

.macro SITE_MISS reg
site_miss_\reg:
        mov     %ecx, %gs:CTX_SITE_MISS        /* the key */
        mov     %rdx, %gs:CTX_SPILL_RDX
        mov     %\reg, %gs:CTX_IND_TARGET      /* the guest target */
        lea     dbo_site_miss_record(%rip), %rdx
        jmp     *%gs:CTX_EXIT_ENTRY
.endm
        .irp reg, rax, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15
        SITE_MISS \reg
        .endr
/* A jump or call through memory: no register holds its target, which the
 * dispatcher reads from the table (table_jump_miss_target). */
site_miss_rsp:
        mov     %ecx, %gs:CTX_SITE_MISS        /* the key */
        mov     %rdx, %gs:CTX_SPILL_RDX
        lea     dbo_site_miss_record(%rip), %rdx
        jmp     *%gs:CTX_EXIT_ENTRY
site_miss_rcx:                                 /* never: rcx holds no target */
        ud2

        .globl dbo_victim_lookup_end
dbo_victim_lookup_end:

        .section .note.GNU-stack, "", @progbits
