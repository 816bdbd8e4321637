/* The indirect table's victim table (struct guest_context's ibl_victim):
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

        .globl dbo_victim_lookup_end
dbo_victim_lookup_end:

        .section .note.GNU-stack, "", @progbits
