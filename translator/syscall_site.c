/* System call sites: a guest `syscall` goes to the gate, through its fast
 * path (syscall/fast_gate.S) when the gate would pass the call on
 * unchanged. Emitted into the fragment that translate.c is building. */
#include <string.h>

#include "runtime/runtime.h"
#include "translator/builder.h"

/* A system call through the gate's fast path (syscall/fast_gate.S), for
 * a number the gate passes on unchanged (`known`: the translator saw it
 * set; else the fast path looks it up). It comes back to `cont`; to
 * `slow`, 15 bytes before, when the runtime must see the outcome; to
 * `full`, 33 bytes before, when the call needs the C gate:
 *       mov %rcx, %gs:spill_rcx       for `full` and signals; the kernel
 *       mov %rdx, %gs:spill_rdx       clobbers rcx
 *       lea cont(%rip), %rcx
 *       mov %rcx, %gs:syscall_return
 *       jmp *%gs:syscall_entry (or syscall_check)
 *  full: mov $<exit: EXIT_SYSCALL>, %rdx
 *       jmp *%gs:exit_entry
 *  slow: movabs $next, %rcx           rcx as the kernel leaves it
 *       jmp <exit: EXIT_SYSCALL_DONE>
 *  cont: movabs $next, %rcx
 *       jmp <exit to next, linked as usual>
 * A fragment ending in such a call links to the one after it: no exit to
 * the dispatcher on the way. */
void emit_fast_syscall(struct builder *b, uint64_t next, bool known)
{
    static const uint8_t lea_rcx[] = {0x48, 0x8d, 0x0d}; /* lea rel32(%rip), %rcx */
    emit_store_gs(&b->p, GPR_RCX, CTX_SPILL_RCX);
    emit_store_gs(&b->p, GPR_RDX, CTX_SPILL_RDX);
    emit_bytes(&b->p, lea_rcx, sizeof lea_rcx);
    uint8_t *cont_rel32 = b->p;
    emit_u32(&b->p, 0);
    emit_store_gs(&b->p, GPR_RCX, CTX_SYSCALL_RETURN);
    emit_jmp_gs(&b->p, known ? CTX_SYSCALL_ENTRY : CTX_SYSCALL_CHECK);
    uint8_t *full = b->p;
    int e = new_exit(b, EXIT_SYSCALL, next, NULL);
    b->exits[e].stub = full;
    emit_record(b, e);
    emit_jmp_gs(&b->p, CTX_EXIT_ENTRY);
    uint8_t *slow = b->p;
    emit_movabs(&b->p, GPR_RCX, next);
    emit_u8(&b->p, 0xe9); /* never linked, never patched: no padding */
    new_exit(b, EXIT_SYSCALL_DONE, next, b->p);
    emit_u32(&b->p, 0);
    if (slow - full != 18 || b->p - slow != 15)
        dbo_fatal("fast syscall layout is off: %d and %d bytes", (int)(slow - full),
                  (int)(b->p - slow));
    patch_rel32(cont_rel32, b->p);
    emit_movabs(&b->p, GPR_RCX, next);
    new_exit(b, EXIT_DIRECT, next, emit_jmp_rel32(&b->p));
}
