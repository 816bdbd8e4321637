/* The return stack's slow paths (the fast ones are emitted by
 * translator/indirect.c, see emit_call_push and emit_return).
 *
 * A translated call parks the guest's %rsp in %gs:CTX_PARKED_SP, switches
 * to the thread's return stack (%gs:CTX_RETURN_SP) and makes a real `call`
 * to just past its pad, then switches back and pushes the guest's return
 * address as usual: the host's return predictor has seen a call. A
 * translated return pops the guest's return address into %rdx, parks the
 * guest's %rsp, switches to the return stack and makes a real `ret`, which
 * the predictor gets right: it lands on the pad of the call it matches.
 * The pad switches back and checks that %rdx is its own call's return
 * address. The guest's stack only ever holds guest addresses (DESIGN.md
 * decision 6); the return stack only ever holds pads or dbo_return_empty.
 *
 * Nothing forces calls and returns to pair (longjmp, exceptions, signal
 * handlers, coroutines): then a pad finds a return address not its own,
 * empties the return stack and comes to dbo_return_lookup; a return on an
 * empty stack pops the entry at its bottom, dbo_return_empty, and comes
 * here too. A stack deeper than its memory faults on its guard page, and
 * faults.c empties it and resumes. */
#include "translator/translator.h"

        .text
        .globl dbo_return_stack_start
dbo_return_stack_start:

/* dbo_return_empty: a `ret` popped the bottom entry of the return stack.
 *   %rsp            = just above that entry (%gs:CTX_RETURN_SP_EMPTY + 8)
 *   %gs:CTX_PARKED_SP = the guest's %rsp, after its return address was popped
 *   %rdx            = that return address
 *   %gs:SPILL_RCX, %gs:SPILL_RDX = the guest's rcx and rdx
 * Flags: all the guest's, untouched (lea and jrcxz only, as below). */
        .globl dbo_return_empty
        .type dbo_return_empty, @function
dbo_return_empty:
        lea     -8(%rsp), %rsp                 /* the bottom entry stays */
        mov     %rsp, %gs:CTX_RETURN_SP
        mov     %gs:CTX_PARKED_SP, %rsp        /* the guest's stack again */
        /* fall through */

/* dbo_return_lookup: the guest's return address in %rdx, the guest's
 * %rsp in %rsp, rcx and rdx spilled: look the target up in the indirect
 * table like any indirect branch, or leave for the dispatcher. */
        .globl dbo_return_lookup
        .type dbo_return_lookup, @function
dbo_return_lookup:
        mov     %gs:CTX_RETURN_MISSES, %rcx
        lea     1(%rcx), %rcx
        mov     %rcx, %gs:CTX_RETURN_MISSES
        TWO_WAY_PROBE CTX_IBL_TABLE, 1f, 2f
        lea     dbo_return_miss_record(%rip), %rcx /* a miss here: the victim table */
        mov     %rcx, %gs:CTX_IND_SITE
        jmp     dbo_victim_lookup
1:      movzwl  %dx, %ecx
        lea     (%rcx,%rcx), %rcx
        mov     %gs:CTX_IBL_TABLE+8(,%rcx,8), %rcx /* the target's indirect entry */
        mov     %gs:CTX_SPILL_RDX, %rdx
        jmp     *%rcx                          /* which restores rcx */
2:      movzwl  %dx, %ecx
        lea     (%rcx,%rcx), %rcx
        mov     %gs:CTX_IBL_TABLE+24(,%rcx,8), %rcx
        mov     %gs:CTX_SPILL_RDX, %rdx
        jmp     *%rcx
        .globl dbo_return_stack_end
dbo_return_stack_end:

        .section .note.GNU-stack, "", @progbits
