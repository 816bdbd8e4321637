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

/* VICTIM_LOOKUP index: the lookup, with the victim table's slot of the
 * target in %rdx found by `index` (a macro that leaves 2 * the slot in
 * %rcx, flags untouched). */
.macro VICTIM_LOOKUP index
        \index
        mov     %gs:CTX_IBL_VICTIM(,%rcx,8), %rcx
        lea     (%rcx,%rdx), %rcx              /* zero iff the first way's tag matches */
        jrcxz   5f
        \index
        mov     %gs:CTX_IBL_VICTIM+16(,%rcx,8), %rcx
        lea     (%rcx,%rdx), %rcx              /* the second way */
        jrcxz   6f
        jmp     3f
5:      jmp     1f                             /* (jrcxz reaches 127 bytes) */
6:      jmp     2f
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
        \index
        mov     %gs:CTX_IBL_VICTIM+8(,%rcx,8), %rcx /* the target's indirect entry */
        mov     %gs:CTX_SPILL_RDX, %rdx
        jmp     *%rcx                          /* which restores rcx */
4:      mov     $VICTIM_PROMOTE_EVERY, %ecx    /* this one goes back to the table */
        mov     %rcx, %gs:CTX_VICTIM_COUNTDOWN
        jmp     3b
2:      mov     %gs:CTX_VICTIM_COUNTDOWN, %rcx
        lea     -1(%rcx), %rcx
        mov     %rcx, %gs:CTX_VICTIM_COUNTDOWN
        jrcxz   4b
        mov     %gs:CTX_IND_HITS, %rcx
        lea     1(%rcx), %rcx
        mov     %rcx, %gs:CTX_IND_HITS
        \index
        mov     %gs:CTX_IBL_VICTIM+24(,%rcx,8), %rcx
        mov     %gs:CTX_SPILL_RDX, %rdx
        jmp     *%rcx
.endm

/* The table's own index (the target's low 16 bits): without BMI2. */
.macro LOW_INDEX
        movzwl  %dx, %ecx
        lea     (%rcx,%rcx), %rcx
.endm

/* The low 16 bits of target + (target rotated right by 16), ibl_victim_index():
 * targets that share a slot pair in the table, being 64 KiB apart, mostly
 * do not share one here. cc1 missed both tables for 75 000 targets it had
 * translated, each a trip through the dispatcher, with the table's index. */
.macro MIXED_INDEX
        rorx    $16, %rdx, %rcx
        lea     (%rcx,%rdx), %rcx
        movzwl  %cx, %ecx
        lea     (%rcx,%rcx), %rcx
.endm

        .globl dbo_victim_lookup
        .type dbo_victim_lookup, @function
dbo_victim_lookup:
        VICTIM_LOOKUP LOW_INDEX
        .size dbo_victim_lookup, .-dbo_victim_lookup

        .globl dbo_victim_lookup_mixed
        .type dbo_victim_lookup_mixed, @function
dbo_victim_lookup_mixed:
        VICTIM_LOOKUP MIXED_INDEX
        .size dbo_victim_lookup_mixed, .-dbo_victim_lookup_mixed

        .globl dbo_victim_lookup_end
dbo_victim_lookup_end:

        .section .note.GNU-stack, "", @progbits
