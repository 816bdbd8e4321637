/* Calls, returns and indirect branches: the flag-free in-cache lookup of
 * an indirect target in the per-thread table (two ways, reached through
 * %gs), returns, calls on the return stack (--return-stack), the optional
 * inline target check (--inline-targets), and the exit stubs that hand a
 * record to the dispatcher. Emitted into the fragment that translate.c is building. */
#include <inttypes.h>
#include <string.h>

#include "runtime/runtime.h"
#include "translator/builder.h"

/* Pushes a 64-bit guest address with a single 8-byte store, flags and
 * registers untouched: `push $imm32` if it sign-extends, else
 * `pushq lit(%rip)`. (Two 4-byte stores, as push+mov would be, make the
 * return's 8-byte load of it miss store forwarding.) */
void emit_push_u64(struct builder *b, uint64_t v)
{
    if ((uint64_t)(int64_t)(int32_t)v == v) {
        emit_u8(&b->p, 0x68);
        emit_u32(&b->p, (uint32_t)v);
        return;
    }
    emit_u8(&b->p, 0xff);
    emit_u8(&b->p, 0x35);
    b->literal_rel32[b->n_literals] = b->p;
    b->literal[b->n_literals++] = v;
    emit_u32(&b->p, 0);
}

void emit_literals(struct builder *b)
{
    if (!b->n_literals)
        return;
    while ((uintptr_t)b->p % 8)
        emit_u8(&b->p, 0xcc);
    for (int i = 0; i < b->n_literals; i++) {
        patch_rel32(b->literal_rel32[i], b->p);
        emit_u64(&b->p, b->literal[i]);
    }
}

/* The exit stub (STUB_SIZE bytes, at b->exits[exit].stub): names the exit
 * by its id, filled in by place_exits(), and leaves through
 * dbo_stub_entry. No register or flag is touched. Linking may rewrite its
 * first 14 bytes as a far jump (link.c). */
void emit_exit_stub(struct builder *b, int exit)
{
    if (b->p != b->exits[exit].stub)
        dbo_fatal("exit stub out of place");
    write_exit_stub(b->p, b->p, 0);
    b->p += STUB_SIZE;
    b->exits[exit].id_stub = true;
}

uint8_t *cold_end(struct builder *b)
{
    size_t n = (size_t)(b->p - b->cold_piece);
    if (n > MAX_COLD_PIECE)
        dbo_fatal("cold code piece of %zu bytes", n);
    uint8_t *dst = b->cold - n;
    memmove(dst, b->cold_piece, n);
    for (int i = b->cold_piece_refs; i < b->n_record_refs; i++)
        b->record_imm[i] += dst - b->cold_piece;
    b->cold = dst;
    b->p = b->hot_p;
    return dst;
}

/* rcx = 2 * ibl_index(rdx): the target's slot, for an 8-scaled operand. */
static void emit_table_index(uint8_t **p)
{
    static const uint8_t index[] = {
        0x0f, 0xb7, 0xca,       /* movzx %dx, %ecx */
        0x48, 0x8d, 0x0c, 0x09, /* lea (%rcx,%rcx), %rcx */
    };
    emit_bytes(p, index, sizeof index);
}

/* mov %gs:(CTX_IBL_TABLE + field)(,%rcx,8), %rcx */
static void emit_load_table(uint8_t **p, uint32_t field)
{
    static const uint8_t load[] = {0x65, 0x48, 0x8b, 0x0c, 0xcd};
    emit_bytes(p, load, sizeof load);
    emit_u32(p, CTX_IBL_TABLE + field);
}

/* Probes table slot `way` (0: the target's own slot, 1: the next one) for
 * the target in %rdx, guest rcx/rdx spilled: falls through on a mismatch
 * and returns the jrcxz to patch to the hit path. */
static uint8_t *emit_table_probe(uint8_t **p, int way)
{
    static const uint8_t compare[] = {
        0x48, 0x8d, 0x0c, 0x11, /* lea (%rcx,%rdx), %rcx  zero iff tag matches */
        0xe3, 0x00,             /* jrcxz hit */
    };
    emit_table_index(p);
    emit_load_table(p, 16 * way);
    emit_bytes(p, compare, sizeof compare);
    return *p - 1;
}

/* With --stats, adds one to the counter at %gs:slot (rcx is free here). */
void emit_count(uint8_t **p, uint32_t slot)
{
    if (!dbo_opts.stats)
        return;
    static const uint8_t inc[] = {0x48, 0x8d, 0x49, 0x01}; /* lea 1(%rcx), %rcx */
    emit_load_gs(p, GPR_RCX, slot);
    emit_bytes(p, inc, sizeof inc);
    emit_store_gs(p, GPR_RCX, slot);
}

/* A hit in slot `way`: count it and load the entry into rcx. */
static void emit_table_hit(uint8_t **p, int way)
{
    emit_count(p, CTX_IND_HITS);
    emit_table_index(p);
    emit_load_table(p, 16 * way + 8);
}

/* Straight to the dispatcher with the target in %rdx. */
static void emit_indirect_miss(struct builder *b, int exit)
{
    emit_store_gs(&b->p, GPR_RDX, CTX_IND_TARGET);
    emit_record(b, exit);
    emit_jmp_gs(&b->p, CTX_EXIT_ENTRY);
}

/* A miss in the table: on to the victim table (victim_lookup.S), which
 * hands the dispatcher the exit's record if it misses too. */
static void emit_table_miss(struct builder *b, int exit)
{
    emit_record_in(b, exit, GPR_RCX);
    emit_store_gs(&b->p, GPR_RCX, CTX_IND_SITE);
    emit_jmp_gs(&b->p, CTX_VICTIM_LOOKUP);
}

/* Points a jrcxz (its rel8 at `rel8`) at the cursor. */
static void land_jrcxz(uint8_t *rel8, uint8_t *at)
{
    int64_t d = at - (rel8 + 1);
    if (d > 127)
        dbo_fatal("indirect lookup too long for jrcxz (%" PRId64 " bytes)", d);
    *rel8 = (uint8_t)d;
}

/* The whole lookup of the target in %rdx: both probes in line, each
 * followed by its hit path (load the entry, restore rdx, jump: the entry
 * restores rcx); the miss exit in cold code, out of the hot code's way. */
static void emit_lookup(struct builder *b, int exit)
{
    uint8_t **p = &b->p;
    uint8_t *jrcxz0 = emit_table_probe(p, 0);
    uint8_t *jrcxz1 = emit_table_probe(p, 1);
    emit_u8(p, 0xe9); /* jmp <the miss exit, in cold code> */
    uint8_t *to_miss = *p;
    emit_u32(p, 0);
    for (int way = 0; way < 2; way++) {
        land_jrcxz(way ? jrcxz1 : jrcxz0, *p);
        emit_table_hit(p, way);
        emit_load_gs(p, GPR_RDX, CTX_SPILL_RDX);
        static const uint8_t jmp_rcx[] = {0xff, 0xe1}; /* jmp *%rcx */
        emit_bytes(p, jmp_rcx, sizeof jmp_rcx);
    }
    cold_begin(b);
    emit_table_miss(b, exit);
    patch_rel32(to_miss, cold_end(b));
}

/* The inline target check in front of an indirect branch's table lookup
 * (target in %rdx, guest rcx/rdx spilled):
 *       movabs $-predicted, %rcx   imm64 set once, by the dispatcher, to the
 *       lea (%rcx,%rdx), %rcx      first target the lookup missed on
 *       jrcxz 1f
 *       <table lookup>
 *   1:  mov %gs:spill_rcx, %rcx; mov %gs:spill_rdx, %rdx
 *       jmp <direct exit to the predicted target, linked as usual>
 * A site that keeps one target (a call through a pointer that does not
 * change, a return from a function with one hot caller) then costs a
 * compare and a direct jump. The imm64 starts at 0, which only a branch to
 * address 0 matches; its exit then faults there like the branch would. */
static void emit_inline_check(struct builder *b, int exit)
{
    if (!dbo_opts.inline_targets || b->mode == BUILD_TRACE) /* a trace has its guards */
        return;
    while (((uintptr_t)b->p + 2) % 8)
        emit_u8(&b->p, 0x90);
    emit_movabs(&b->p, GPR_RCX, 0);
    b->exits[exit].inline_tag = (uint64_t *)(b->p - 8);
    static const uint8_t lea[] = {0x48, 0x8d, 0x0c, 0x11};
    emit_bytes(&b->p, lea, sizeof lea);
    /* jrcxz reaches only 127 bytes: hop over a jmp rel32 to the hit block */
    static const uint8_t hop[] = {0xe3, 0x02, 0xeb, 0x05}; /* jrcxz +2; jmp +5 */
    emit_bytes(&b->p, hop, sizeof hop);
    emit_u8(&b->p, 0xe9);
    b->inline_hit_rel32 = b->p;
    emit_u32(&b->p, 0);
}

/* The hit block of the inline check, emitted after the lookup. */
static void emit_inline_hit(struct builder *b, int exit)
{
    if (!b->inline_hit_rel32)
        return;
    patch_rel32(b->inline_hit_rel32, b->p);
    b->inline_hit_rel32 = NULL;
    emit_count(&b->p, CTX_INLINE_HITS);
    emit_load_gs(&b->p, GPR_RCX, CTX_SPILL_RCX);
    emit_load_gs(&b->p, GPR_RDX, CTX_SPILL_RDX);
    b->inline_exit_of[exit] = new_exit(b, EXIT_DIRECT, 0, emit_jmp_rel32(&b->p));
}

/* In-cache lookup of the guest target in %rdx, the guest's rcx/rdx in
 * their spill slots (after the inline target check, if on). Hit: restore
 * both, jump to the target's indirect entry. Miss: exit to the dispatcher
 * through exit `exit`. */
void emit_indirect_branch(struct builder *b, int exit)
{
    if (b->mode == BUILD_RECORD) { /* the recorder wants to see every target */
        emit_indirect_miss(b, exit);
        return;
    }
    emit_inline_check(b, exit);
    emit_lookup(b, exit);
    emit_inline_hit(b, exit);
}

/* Parks the guest's %rsp and switches to the return stack, or back. */
static void emit_to_return_stack(uint8_t **p)
{
    emit_store_gs(p, GPR_RSP, CTX_PARKED_SP);
    emit_load_gs(p, GPR_RSP, CTX_RETURN_SP);
}

static void emit_from_return_stack(uint8_t **p)
{
    emit_store_gs(p, GPR_RSP, CTX_RETURN_SP);
    emit_load_gs(p, GPR_RSP, CTX_PARKED_SP);
}

static bool uses_return_stack(const struct builder *b)
{
    /* Not in traces (their calls and returns follow the path) nor in
     * one-off blocks: a return there leaves a stale entry, a return of
     * theirs pops the wrong one. Either is a mismatch a pad catches. */
    return dbo_opts.return_stack && b->mode == BUILD_FRAGMENT;
}

/* A return, guest rcx/rdx spilled; `ret $pop_extra` pops that much more.
 * The guest's return address is popped into %rdx. With the return stack
 * (see return_stack.S): park the guest's %rsp and `ret` on the return
 * stack, to the pad of the matching call, which checks %rdx. Without: look
 * %rdx up like any indirect branch's target, missing through `exit` (-1:
 * a new one). */
void emit_return(struct builder *b, int exit, uint16_t pop_extra)
{
    emit_u8(&b->p, 0x5a); /* pop %rdx */
    if (pop_extra) {
        static const uint8_t lea[] = {0x48, 0x8d, 0xa4, 0x24}; /* lea extra(%rsp), %rsp */
        emit_bytes(&b->p, lea, sizeof lea);
        emit_u32(&b->p, pop_extra);
    }
    if (uses_return_stack(b)) {
        emit_to_return_stack(&b->p);
        emit_u8(&b->p, 0xc3);
        return;
    }
    emit_indirect_branch(b, exit >= 0 ? exit : new_exit(b, EXIT_INDIRECT, 0, NULL));
}

/* The push of a call's guest return address. With the return stack:
 *       mov %rsp, %gs:parked_sp; mov %gs:return_sp, %rsp
 *       call 1f                 a real call, on the return stack
 *   pad: mov %rsp, %gs:return_sp; mov %gs:parked_sp, %rsp
 *       lea -<return address>(%rdx), %rcx ... jrcxz 2f   (rdx: popped by
 *       jmp <cold: empty the return stack, look %rdx up>  the return)
 *   2:  mov %gs:spill_rcx, %rcx; mov %gs:spill_rdx, %rdx
 *       jmp <fragment at the return address>
 *   1:  mov %rsp, %gs:return_sp; mov %gs:parked_sp, %rsp
 *       push <return address>
 *   (the branch to the callee follows)
 * Flags untouched throughout; the guest's stack sees only its own
 * addresses (DESIGN.md decision 6). */
void emit_call_push(struct builder *b, uint64_t guest_return)
{
    if (!uses_return_stack(b)) {
        if (dbo_opts.return_prefetch) {
            /* The return will look its target up in the table: ask for
             * that line now, while the callee runs. The table is 1 MiB a
             * thread; the lookup of a return waited on this load for
             * 62% of its samples in cc1 (of 22% of all). */
            static const uint8_t prefetch[] = {GS_PREFIX, 0x0f, 0x18, 0x0c, 0x25};
            emit_bytes(&b->p, prefetch, sizeof prefetch); /* prefetcht0 %gs:slot */
            emit_u32(&b->p, CTX_IBL_TABLE + 16 * ibl_index(guest_return));
        }
        emit_push_u64(b, guest_return);
        return;
    }
    uint8_t **p = &b->p;
    emit_to_return_stack(p);
    emit_u8(p, 0xe8); /* call 1f */
    uint8_t *call_rel32 = *p;
    emit_u32(p, 0);
    emit_from_return_stack(p);
    emit_movabs(p, GPR_RCX, -guest_return);
    static const uint8_t compare[] = {
        0x48, 0x8d, 0x0c, 0x11, /* lea (%rcx,%rdx), %rcx  zero iff it is ours */
        0xe3, 0x05,             /* jrcxz 2f */
    };
    emit_bytes(p, compare, sizeof compare);
    emit_u8(p, 0xe9); /* jmp <mismatch, in cold code> */
    uint8_t *to_mismatch = *p;
    emit_u32(p, 0);
    emit_count(p, CTX_RETURN_HITS); /* with --stats */
    emit_load_gs(p, GPR_RCX, CTX_SPILL_RCX);
    emit_load_gs(p, GPR_RDX, CTX_SPILL_RDX);
    new_exit(b, EXIT_DIRECT, guest_return, emit_jmp_rel32(p));
    patch_rel32(call_rel32, *p);
    emit_from_return_stack(p);
    emit_push_u64(b, guest_return);

    cold_begin(b); /* not ours: empty the return stack, look the target up */
    emit_load_gs(p, GPR_RCX, CTX_RETURN_SP_EMPTY);
    emit_store_gs(p, GPR_RCX, CTX_RETURN_SP);
    emit_jmp_gs(p, CTX_RETURN_LOOKUP);
    patch_rel32(to_mismatch, cold_end(b));
}
