/* Jump-table sites: an indirect jump whose target the instructions just
 * before it loaded from a table, indexed by a register,
 *       movzbl %sil, %eax; mov table(,%rax,8), %rax; jmp *%rax
 *                                     (an interpreter's computed goto)
 *       movslq (%rdx,%rax,4), %rax; add %rdx, %rax; jmp *%rax
 *                                     (a switch, position-independent)
 * looks its target up in a table of its own in the thread's context,
 * indexed by the low byte of the table index (MAX_SITES such tables of
 * SITE_SLOTS): cases rarely share one. The load of the target first
 * saves that byte (the index register is often the target's):
 *       mov %<index>b, %gs:SITE_KEY         then the guest's load
 *       ...
 *       mov %rcx, %gs:spill_rcx             for the jump
 *       movzbl %gs:SITE_KEY, %ecx
 *       mov %gs:SITE_TAGS(,%rcx,8), %rcx    the negated target it holds
 *       lea (%rcx,%<target>), %rcx          zero iff it is this one
 *       jrcxz 1f
 *       jmp <miss: the thread's shared table, below>
 *   1:  movzbl %gs:SITE_KEY, %ecx
 *       mov %gs:SITE_ENTRIES(,%rcx,8), %rcx
 *       jmp *%rcx                           (the entry restores rcx)
 * ten instructions where the table lookup has fifteen (rdx is not
 * needed), and a table the size of the jump's own (the jumps through one
 * absolute table share a site), not one shared by every target of the
 * program. A slot is filled by the dispatcher, under the lock, when a
 * miss gets there (one that misses the shared table too, or every
 * SITE_LEARN_EVERY-th): the exit's record names the site (in target_off,
 * which an indirect exit does not use). Flushes and invalidations clear
 * slots as they do the thread's table. Which byte indexes the slots only
 * matters for speed: a slot holds its target's tag.
 *
 * A proven site needs no tag: its table is constant memory and the index
 * is under 256, so a slot once filled stays right; its jump is the key
 * and `jmp *%gs:slot`, an empty slot leading to the site's miss stub
 * (victim_lookup.S). Its table holds the targets, or is relative (4-byte
 * entries added to the table's address, a lea'd base: sqlite's bytecode
 * dispatch, `lea table(%rip), %rcx; movzbl %r15b, %edx; movslq
 * (%rcx,%rdx,4), %rax; add %rcx, %rax; jmp *%rax`). Calls and jumps
 * through an absolute table's memory (`call *(%base,%index,8)`) are
 * proven sites too. */
#include <Zydis/Zydis.h>
#include <string.h>

#include <stdlib.h>
#include <sys/mman.h>

#include "cache/cache.h"
#include "syscall/syscall.h"
#include "runtime/runtime.h"
#include "translator/builder.h"

static int n_sites;
static int sites_touched;              /* the most sites ever in use: what clearing clears */
static uint64_t site_owner[MAX_SITES]; /* the guest table each site is for, or its jump */
/* A proven site: its table is constant (read-only, private memory) and
 * every jump through it has an index under 256, so a slot, once filled,
 * is right for good; its jumps use no tags. Its target register (the
 * miss stub to use) and the guest pcs of its jumps, which are
 * invalidated if the table's memory changes (table_jump_memory_changes). */
static struct proven_site {
    bool proven;   /* its slots are right once filled */
    bool untagged; /* its jumps use no tags (a site proven once) */
    bool relative; /* 4-byte entries, each target the table plus its entry */
    int target;
    uint64_t table;
    uint64_t *jumps;
    int n_jumps, max_jumps;
} proven[MAX_SITES];

/* Where an empty slot of a proven site leads (victim_lookup.S). */
static uint64_t site_miss_stub(int site, int target)
{
    return (uint64_t)dbo_site_miss_stubs + (uint64_t)(site * 16 + target) * 32;
}

/* A proven site's key: its table, the register its stub takes the
 * target from and whether the table is relative (table addresses leave
 * the top 16 bits free). */
static uint64_t proven_key(uint64_t table, int target, bool relative)
{
    return table | (uint64_t)(target + 1) << 56 | (uint64_t)relative << 48;
}

/* Decodes the instruction at pc, reading nothing at or past `end`. */
static bool decode(uint64_t pc, uint64_t end, ZydisDecodedInstruction *insn,
                   ZydisDecodedOperand *ops)
{
    size_t avail = pc < end ? end - pc : 0;
    return ZYAN_SUCCESS(ZydisDecoderDecodeFull(&fragment_decoder, (const void *)pc,
                                               avail < 15 ? avail : 15, insn, ops));
}

/* Whether the instruction writes general register gpr (any part). */
static bool writes(const ZydisDecodedInstruction *insn, const ZydisDecodedOperand *ops, int gpr)
{
    for (int i = 0; i < insn->operand_count; i++)
        if (ops[i].type == ZYDIS_OPERAND_TYPE_REGISTER && gpr_number(ops[i].reg.value) == gpr &&
            (ops[i].actions & ZYDIS_OPERAND_ACTION_MASK_WRITE))
            return true;
    return false;
}

/* Whether `jmp *%<target>` follows within four instructions the quick
 * decoder knows (bytes: the load's, avail of them executable): a cheap
 * test first, as most loads with a scaled index are array reads. Zydis's
 * full decode costs 200 ns an instruction; five for every such load made
 * /bin/true 10% slower. */
static bool jump_follows(const uint8_t *bytes, size_t avail, const ZydisDecodedInstruction *load)
{
    uint8_t rex = bytes[load->raw.modrm.offset - 2];
    int target = (rex & 4) << 1 | load->raw.modrm.reg;
    size_t at = load->length;
    for (int n = 0; n < 4; n++) {
        if (at + 15 > avail)
            return false;
        const uint8_t *p = bytes + at;
        if (target < 8 ? p[0] == 0xff && p[1] == (0xe0 | target)
                       : p[0] == 0x41 && p[1] == 0xff && p[2] == (0xe0 | (target & 7)))
            return true;
        ZydisDecodedInstruction insn;
        ZydisDecodedOperand ops[3];
        if (!quick_decode(p, avail - at, &insn, ops) ||
            insn.meta.category != ZYDIS_CATEGORY_INVALID) /* a branch: no */
            return false;
        at += insn.length;
    }
    return false;
}

static int site_for(uint64_t key, uint64_t constant_table, int target, bool relative);

/* Whether the `slots` entries (of entry_size bytes) from `table` on are
 * constant: readable, never writable, not shared (another process could
 * write a shared mapping). A change to that memory kills the site
 * (table_jump_memory_changes). */
static bool constant_table(uint64_t table, unsigned slots, unsigned entry_size)
{
    for (uint64_t page = table & ~4095ull; page < table + slots * entry_size; page += 4096) {
        int prot = guest_vm_prot(page);
        if (prot < 0 || !(prot & PROT_READ) || (prot & (PROT_WRITE | GUEST_VM_SHARED)))
            return false;
    }
    return true;
}

/* The last instruction before the load at pc, in this fragment and at
 * most `back` instructions back, that writes register reg: 1 (decoded
 * into insn/ops, at *at), 0 (none: the fragment starts after any) or -1
 * (none within `back`, or one it cannot decode). Code before the load in
 * a fragment runs before it, in order: a fragment only falls through. */
static int last_write(const struct builder *b, uint64_t pc, int reg, int back,
                      ZydisDecodedInstruction *insn, ZydisDecodedOperand *ops, uint64_t *at)
{
    int load = b->n_insns - 1;
    uint64_t fragment_pc = pc - b->map[load].guest_off;
    for (int i = load - 1; i >= 0; i--) {
        if (i < load - back)
            return -1;
        *at = fragment_pc + b->map[i].guest_off;
        if (!decode(*at, pc, insn, ops))
            return -1;
        if (writes(insn, ops, reg))
            return 1;
    }
    return 0;
}

/* Whether the instruction writes register reg's low 32 bits and clears
 * the upper ones: a write of a 32-bit register, or movzx of a byte or
 * word into the whole register. */
static bool zero_extends(const ZydisDecodedInstruction *insn, const ZydisDecodedOperand *ops)
{
    return ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
           (ops[0].size == 32 || (insn->mnemonic == ZYDIS_MNEMONIC_MOVZX && ops[0].size == 64));
}

/* How many values the index register can hold at the load at pc, if
 * under 256 (else 0), from the instructions before it in the fragment (up
 * to four back, eight for a compare's zero extension; code before the
 * load in a fragment runs before it, in order, a conditional branch only
 * leaving it):
 *   - its last write is movzbl (or movzbq): 256; an `and` with an
 *     immediate under 256: that plus one (each writes the whole register);
 *   - a `cmp $imm, %index` that a ja (jae) leaves by: imm + 1 (imm), where
 *     the compare covers the whole register: a 64-bit one, or a 32-bit one
 *     of a register whose last write zero-extended (a 32-bit write, or
 *     `mov %e<index>, %e<index>` after the compare): a switch's bound.
 * The smaller of what it finds. */
static unsigned index_bound(const struct builder *b, uint64_t pc, int index)
{
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    unsigned bound = 0;      /* from a compare, 0: none */
    bool compare_32 = false; /* which covered the low half only */
    bool upper_zero = false; /* a self-move since zero-extended it */
    int after = -1;          /* the branch after the instruction at hand, if ja/jae */
    int load = b->n_insns - 1;
    uint64_t fragment_pc = pc - b->map[load].guest_off;
    /* (four back, or eight to see what zero-extended a compared value:
     * Zydis's full decode costs 200 ns an instruction) */
    for (int i = load - 1; i >= 0 && i >= load - (bound && compare_32 && !upper_zero ? 8 : 4);
         i--) {
        uint64_t at = fragment_pc + b->map[i].guest_off;
        if (!decode(at, at < pc ? pc : at + 15, &insn, ops))
            return 0;
        int branch = insn.mnemonic == ZYDIS_MNEMONIC_JNBE || insn.mnemonic == ZYDIS_MNEMONIC_JNB
                         ? (int)insn.mnemonic
                         : -1;
        if (after >= 0 && !bound && insn.mnemonic == ZYDIS_MNEMONIC_CMP &&
            ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER && gpr_number(ops[0].reg.value) == index &&
            ops[0].size >= 32 && ops[1].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
            ops[1].imm.value.s >= 0 && ops[1].imm.value.s < SITE_SLOTS) {
            bound = (unsigned)ops[1].imm.value.s + (after == ZYDIS_MNEMONIC_JNBE);
            compare_32 = ops[0].size == 32;
        }
        after = branch;
        if (!writes(&insn, ops, index))
            continue;
        if (insn.mnemonic == ZYDIS_MNEMONIC_MOV && ops[0].size == 32 &&
            ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER && gpr_number(ops[1].reg.value) == index) {
            upper_zero = true; /* mov %e<index>, %e<index>: the low half kept */
            continue;
        }
        unsigned own = 0;
        if (ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER && ops[0].size >= 32) {
            if (insn.mnemonic == ZYDIS_MNEMONIC_MOVZX && ops[1].size == 8)
                own = SITE_SLOTS;
            else if (insn.mnemonic == ZYDIS_MNEMONIC_AND &&
                     ops[1].type == ZYDIS_OPERAND_TYPE_IMMEDIATE && ops[1].imm.value.s >= 0 &&
                     ops[1].imm.value.s < SITE_SLOTS)
                own = (unsigned)ops[1].imm.value.s + 1;
        }
        if (bound && compare_32 && !upper_zero && !zero_extends(&insn, ops))
            bound = 0; /* the compare saw the low half of a wider value */
        return own && (!bound || own < bound) ? own : bound;
    }
    return bound && (!compare_32 || upper_zero) ? bound : 0;
}

/* The table address a load through base register `base` at pc uses,
 * where it can be known: the last write of base before it in this
 * fragment is `lea table(%rip)` (then it is that, *guarded = false), or
 * nothing in the fragment writes base and the fragment starts where the
 * guest is now (then it is the register's value, which the jump checks
 * each time it runs: *guarded = true). */
static bool base_value(const struct builder *b, uint64_t pc, int base, uint64_t *table,
                       bool *guarded)
{
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    uint64_t at;
    switch (last_write(b, pc, base, MAX_FRAGMENT_INSNS, &insn, ops, &at)) {
    case 1:
        if (insn.mnemonic != ZYDIS_MNEMONIC_LEA || ops[0].size != 64 ||
            ops[1].mem.base != ZYDIS_REGISTER_RIP || ops[1].mem.index != ZYDIS_REGISTER_NONE)
            return false;
        *table = at + insn.length + (uint64_t)ops[1].mem.disp.value;
        *guarded = false;
        return true;
    case 0: {
        uint64_t fragment_pc = pc - b->map[b->n_insns - 1].guest_off;
        if (!b->ctx || b->ctx->rip != fragment_pc)
            return false;
        *table = b->ctx->gpr[base];
        *guarded = true;
        return true;
    }
    default: return false;
    }
}

/* Notes a jump of a proven site, to invalidate if its table changes. */
static bool note_jump(int site, uint64_t at)
{
    struct proven_site *ps = &proven[site];
    if (ps->n_jumps && ps->jumps[ps->n_jumps - 1] == at)
        return true;
    if (ps->n_jumps == ps->max_jumps) {
        int max = ps->max_jumps ? 2 * ps->max_jumps : 16;
        uint64_t *jumps = realloc(ps->jumps, max * sizeof *jumps);
        if (!jumps)
            return false;
        ps->jumps = jumps;
        ps->max_jumps = max;
    }
    ps->jumps[ps->n_jumps++] = at;
    return true;
}

/* Empties a proven site's slots in one thread: each leads to the miss stub. */
static void empty_proven_site(struct guest_context *ctx, int site)
{
    uint64_t miss = site_miss_stub(site, proven[site].target);
    for (int i = 0; i < SITE_SLOTS; i++) {
        ctx->site_entry[site][i] = miss;
        ctx->site_neg_target[site][i] = 0;
    }
}

static void init_proven_site(struct guest_context *ctx, void *arg)
{
    empty_proven_site(ctx, *(int *)arg);
}

void table_jump_init_context(struct guest_context *ctx)
{
    for (int s = 0; s < n_sites; s++)
        if (proven[s].untagged)
            empty_proven_site(ctx, s);
}

bool table_jump_lookahead(struct builder *b, const uint8_t *bytes, size_t avail,
                          const ZydisDecodedInstruction *quick, uint64_t pc)
{
    if (!dbo_opts.table_jumps || b->mode != BUILD_FRAGMENT || !jump_follows(bytes, avail, quick))
        return false;
    ZydisDecodedInstruction insn;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    uint64_t end = pc + avail;
    if (!decode(pc, end, &insn, ops) || ops[0].type != ZYDIS_OPERAND_TYPE_REGISTER ||
        ops[1].type != ZYDIS_OPERAND_TYPE_MEMORY || ops[1].mem.segment == ZYDIS_REGISTER_FS ||
        ops[1].mem.segment == ZYDIS_REGISTER_GS)
        return false;
    int target = gpr_number(ops[0].reg.value), index = gpr_number(ops[1].mem.index);
    int base = ops[1].mem.base == ZYDIS_REGISTER_NONE ? -1 : gpr_number(ops[1].mem.base);
    if (target < 0 || target == GPR_RCX || target == GPR_RSP || index < 0)
        return false;
    uint64_t table = base < 0 ? (uint64_t)ops[1].mem.disp.value : 0; /* absolute: non-PIE */
    bool relative = insn.mnemonic == ZYDIS_MNEMONIC_MOVSXD;          /* then `add %base, %target` */
    /* a constant table's entries are its targets (8 bytes), or with a
     * relative one the table's base plus the entry (4 bytes, sign-extended,
     * the base register its address): no displacement from a base register */
    bool plain = !relative ? ops[1].mem.scale == 8 &&
                                 (base < 0 ||
                                  (ops[1].mem.disp.value == 0 && base != index && base != GPR_RSP))
                           : ops[1].mem.scale == 4 && base >= 0 && ops[1].mem.disp.value == 0 &&
                                 base != index && base != GPR_RSP && base != target;
    bool base_kept = true; /* base unchanged between the load and the jump */
    /* On to `jmp *%target`, a few instructions on, the target left alone
     * on the way (but for a relative table's add of its base). */
    uint64_t at = pc + insn.length;
    for (int n = 0;; n++, at += insn.length) {
        if (n == 4 || !decode(at, end, &insn, ops))
            return false;
        if (insn.mnemonic == ZYDIS_MNEMONIC_JMP && ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
            gpr_number(ops[0].reg.value) == target)
            break;
        if (insn.meta.category == ZYDIS_CATEGORY_COND_BR ||
            insn.meta.category == ZYDIS_CATEGORY_UNCOND_BR ||
            insn.meta.category == ZYDIS_CATEGORY_CALL || insn.meta.category == ZYDIS_CATEGORY_RET ||
            insn.meta.category == ZYDIS_CATEGORY_SYSCALL ||
            insn.meta.category == ZYDIS_CATEGORY_SYSTEM ||
            insn.meta.category == ZYDIS_CATEGORY_INTERRUPT)
            return false;
        if (base >= 0 && writes(&insn, ops, base))
            base_kept = false;
        if (writes(&insn, ops, target) &&
            !(relative && insn.mnemonic == ZYDIS_MNEMONIC_ADD && base >= 0 &&
              ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER && gpr_number(ops[1].reg.value) == base))
            return false;
    }
    /* (the index first: its walk back is four instructions, the base's
     * up to the fragment's start) */
    unsigned bound = plain ? index_bound(b, pc, index) : 0;
    uint64_t constant_at = table;
    bool guarded = false;
    if (bound && base >= 0 && !(base_kept && base_value(b, pc, base, &constant_at, &guarded)))
        bound = 0;
    if (guarded && base == GPR_RCX) /* the check's own scratch register */
        bound = 0;
    bool constant = bound && constant_table(constant_at, bound, relative ? 4 : 8);
    if (constant)
        table = constant_at;
    int site = site_for(constant ? proven_key(table, target, relative)
                        : table  ? table
                                 : at,
                        constant ? table : 0, target, relative);
    if (site < 0)
        return false;
    if (constant && !note_jump(site, at))
        return false;
    /* mov %<index>b, %gs:SITE_KEY(site), before the load */
    emit_u8(&b->p, GS_PREFIX);
    emit_u8(&b->p, 0x40 | (index >> 3) << 2); /* REX: spl..dil, r8b..r15b */
    emit_u8(&b->p, 0x88);
    emit_u8(&b->p, (uint8_t)(0x04 | (index & 7) << 3));
    emit_u8(&b->p, 0x25);
    emit_u32(&b->p, SITE_KEY(site));
    b->table_jump_at = at;
    b->whole_only = true; /* the jump reads the key the load saved (and the proofs) */
    b->table_jump_site = site;
    b->table_jump_target = target;
    b->table_jump_guard = constant && guarded ? base : -1;
    return true;
}

/* movzbl %gs:SITE_KEY(site), %ecx */
static void emit_key(uint8_t **p, int site)
{
    static const uint8_t load[] = {GS_PREFIX, 0x0f, 0xb6, 0x0c, 0x25};
    emit_bytes(p, load, sizeof load);
    emit_u32(p, SITE_KEY(site));
}

/* A proven site's jump, the key in rcx (guest rcx spilled):
 *       jmp *%gs:SITE_ENTRIES(site)(,%rcx,8)  the slot: an entry, which
 *                                             restores rcx, or a miss stub */
static void emit_slot_jump(uint8_t **p, int site)
{
    static const uint8_t jump[] = {GS_PREFIX, 0xff, 0x24, 0xcd};
    emit_bytes(p, jump, sizeof jump);
    emit_u32(p, SITE_ENTRIES(site));
}

/* lea (%rcx,%<reg>), %rcx: zero iff reg holds what rcx holds negated */
static void emit_lea_rcx_plus(uint8_t **p, int reg)
{
    emit_u8(p, 0x48 | (reg >> 3) << 1);
    emit_u8(p, 0x8d);
    emit_u8(p, 0x0c);
    emit_u8(p, (uint8_t)((reg & 7) << 3 | GPR_RCX));
}

/* mov %<reg>, %rdx */
static void emit_mov_to_rdx(uint8_t **p, int reg)
{
    emit_u8(p, 0x48 | (reg >> 3) << 2);
    emit_u8(p, 0x89);
    emit_u8(p, (uint8_t)(0xc0 | (reg & 7) << 3 | GPR_RDX));
}

/* A table found through base register `base` that the guest may point
 * elsewhere: `table` still? (guest rcx spilled; rcx clobbered)
 *       movabs $-table, %rcx; lea (%rcx,%base), %rcx
 *       jrcxz +5; jmp <not: returned, the rel32 to patch> */
static uint8_t *emit_base_check(uint8_t **p, uint64_t table, int base)
{
    emit_movabs(p, GPR_RCX, -table);
    emit_lea_rcx_plus(p, base);
    static const uint8_t hop[] = {0xe3, 0x05, 0xe9};
    emit_bytes(p, hop, sizeof hop);
    uint8_t *rel32 = *p;
    emit_u32(p, 0);
    return rel32;
}

/* mov %gs:table(,%rcx,8), %rcx */
static void emit_slot_load(uint8_t **p, uint32_t table)
{
    static const uint8_t load[] = {GS_PREFIX, 0x48, 0x8b, 0x0c, 0xcd};
    emit_bytes(p, load, sizeof load);
    emit_u32(p, table);
}

/* The site for jumps through `table`, or where that is not known, for the
 * jump at `at` (its copies in several superblocks): the jumps of one
 * table share one (an interpreter's dispatch is repeated at the end of
 * each of its handlers). A key is a data or a code address (a proven
 * site's also names its target register, for its miss stub): sharing one
 * by chance would cost misses, not correctness. */
static int site_for(uint64_t key, uint64_t constant_table, int target, bool relative)
{
    for (int s = 0; s < n_sites; s++)
        if (site_owner[s] == key)
            return s;
    if (n_sites == MAX_SITES)
        return -1;
    int s = n_sites++;
    site_owner[s] = key;
    dbo_stats.table_sites++;
    if (n_sites > sites_touched)
        sites_touched = n_sites;
    proven[s].proven = proven[s].untagged = constant_table != 0;
    proven[s].n_jumps = 0;
    if (constant_table) {
        dbo_stats.constant_table_sites++;
        proven[s].target = target;
        proven[s].table = constant_table;
        proven[s].relative = relative;
        translator_contexts_each(init_proven_site, &s);
    }
    return s;
}

bool emit_table_jump(struct builder *b)
{
    int target = b->table_jump_target, site = b->table_jump_site;
    uint8_t **p = &b->p;
    emit_store_gs(p, GPR_RCX, CTX_SPILL_RCX);
    if (proven[site].untagged) {
        /* A table found through a register the guest might point
         * elsewhere: check it is still this one, else the usual lookup. */
        int guard = b->table_jump_guard;
        uint8_t *to_lookup = guard >= 0 ? emit_base_check(p, proven[site].table, guard) : NULL;
        emit_count(p, CTX_IND_HITS); /* (misses are counted as such too) */
        emit_count(p, CTX_SITE_HITS);
        emit_key(p, site);
        emit_slot_jump(p, site);
        if (to_lookup) {
            patch_rel32(to_lookup, *p);
            emit_store_gs(p, GPR_RDX, CTX_SPILL_RDX);
            emit_mov_to_rdx(p, target);
            emit_indirect_branch(b, new_exit(b, EXIT_INDIRECT, 0, NULL));
        }
        return true;
    }
    int exit = new_exit(b, EXIT_INDIRECT, 0, NULL);
    emit_key(p, site);
    emit_slot_load(p, SITE_TAGS(site));
    emit_lea_rcx_plus(p, target);
    static const uint8_t over[] = {0xe3, 0x05}; /* jrcxz +5 */
    emit_bytes(p, over, sizeof over);
    emit_u8(p, 0xe9);
    uint8_t *to_miss = *p;
    emit_u32(p, 0);
    emit_count(p, CTX_IND_HITS);
    emit_count(p, CTX_SITE_HITS);
    emit_key(p, site);
    emit_slot_load(p, SITE_ENTRIES(site));
    static const uint8_t jmp_rcx[] = {0xff, 0xe1};
    emit_bytes(p, jmp_rcx, sizeof jmp_rcx);
    /* A miss: the thread's table, as any indirect jump; every
     * SITE_LEARN_EVERY-th miss (and a miss there) goes to the dispatcher,
     * which fills the slot. A slot two targets fight over so costs a
     * table lookup more, not a trip through the dispatcher each time. */
    patch_rel32(to_miss, *p);
    emit_store_gs(p, GPR_RDX, CTX_SPILL_RDX);
    emit_mov_to_rdx(p, target);
    static const uint8_t dec[] = {0x48, 0x8d, 0x49, 0xff}; /* lea -1(%rcx), %rcx */
    emit_load_gs(p, GPR_RCX, CTX_SITE_COUNTDOWN);
    emit_bytes(p, dec, sizeof dec);
    emit_store_gs(p, GPR_RCX, CTX_SITE_COUNTDOWN);
    static const uint8_t hop[] = {0xe3, 0x02, 0xeb, 0x05}; /* jrcxz +2; jmp +5 */
    emit_bytes(p, hop, sizeof hop);
    emit_u8(p, 0xe9); /* jmp <learn, in cold code> */
    uint8_t *to_learn = *p;
    emit_u32(p, 0);
    emit_indirect_branch(b, exit);
    cold_begin(b);
    static const uint8_t reset[] = {GS_PREFIX, 0x48, 0xc7, 0x04, 0x25}; /* movq $imm32, %gs:d32 */
    emit_bytes(p, reset, sizeof reset);
    emit_u32(p, CTX_SITE_COUNTDOWN);
    emit_u32(p, SITE_LEARN_EVERY);
    emit_store_gs(p, GPR_RDX, CTX_IND_TARGET);
    emit_record(b, exit);
    emit_jmp_gs(p, CTX_EXIT_ENTRY);
    patch_rel32(to_learn, cold_end(b));
    b->site_exit = exit;
    b->site = site;
    return true;
}

/* The target register a site of a jump or call through memory names in
 * its key and miss stub: none holds the target, and rsp is never one, so
 * its stub has the dispatcher read the target from the table instead. */
#define TARGET_IN_TABLE GPR_RSP

bool emit_table_call(struct builder *b, const ZydisDecodedInstruction *insn,
                     const ZydisDecodedOperand *quick_op, const uint8_t *bytes, uint64_t pc,
                     uint64_t next)
{
    /* a cheap test first (the quick decoder leaves a memory operand to the
     * raw fields): a SIB byte that scales by 8 (rsp-based operands, which
     * also take a SIB, scale by 1) */
    if (!dbo_opts.table_jumps || b->mode != BUILD_FRAGMENT ||
        quick_op->type != ZYDIS_OPERAND_TYPE_MEMORY || insn->raw.modrm.mod == 3 ||
        insn->raw.modrm.rm != 4 || bytes[insn->raw.sib.offset] >> 6 != 3)
        return false;
    ZydisDecodedInstruction full;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if (!decode(pc, pc + insn->length, &full, ops))
        return false;
    const ZydisDecodedOperand *op = &ops[0];
    if (op->type != ZYDIS_OPERAND_TYPE_MEMORY || op->mem.segment == ZYDIS_REGISTER_FS ||
        op->mem.segment == ZYDIS_REGISTER_GS || op->mem.scale != 8 ||
        op->mem.base == ZYDIS_REGISTER_RIP)
        return false;
    int index = gpr_number(op->mem.index);
    int base = op->mem.base == ZYDIS_REGISTER_NONE ? -1 : gpr_number(op->mem.base);
    if (index < 0 || index == GPR_RCX || index == GPR_RSP || base == index || base == GPR_RSP)
        return false;
    uint64_t table = (uint64_t)op->mem.disp.value;
    bool guarded = false;
    if (base >= 0 && (table != 0 || !base_value(b, pc, base, &table, &guarded)))
        return false;
    unsigned bound = index_bound(b, pc, index);
    if ((guarded && base == GPR_RCX) || !bound || !constant_table(table, bound, 8))
        return false;
    int site = site_for(proven_key(table, TARGET_IN_TABLE, false), table, TARGET_IN_TABLE, false);
    if (site < 0 || !note_jump(site, pc))
        return false;
    bool call = insn->mnemonic == ZYDIS_MNEMONIC_CALL;
    b->whole_only = true; /* the bound and the base were proven before it */
    uint8_t **p = &b->p;
    emit_store_gs(p, GPR_RCX, CTX_SPILL_RCX);
    uint8_t *to_lookup = guarded ? emit_base_check(p, table, base) : NULL;
    emit_count(p, CTX_IND_HITS);
    emit_count(p, CTX_SITE_HITS);
    emit_u8(p, 0x40 | index >> 3); /* movzbl %<index>b, %ecx */
    emit_u8(p, 0x0f);
    emit_u8(p, 0xb6);
    emit_u8(p, (uint8_t)(0xc8 | (index & 7)));
    if (call)
        emit_call_push(b, next);
    emit_slot_jump(p, site);
    if (to_lookup) { /* the base register moved: as any call through memory */
        patch_rel32(to_lookup, *p);
        emit_load_gs(p, GPR_RCX, CTX_SPILL_RCX);
        emit_store_gs(p, GPR_RDX, CTX_SPILL_RDX);
        emit_load_operand_rdx(p, insn, bytes, next);
        if (call)
            emit_call_push(b, next);
        emit_indirect_branch(b, new_exit(b, EXIT_INDIRECT, 0, NULL));
    }
    return true;
}

/* What proven site `site` holds at `slot` now, in *target; false if the
 * site is no longer proven (flushed and given out again, or its table's
 * memory changed). */
static bool proven_entry(unsigned site, unsigned slot, uint64_t *target)
{
    if (site >= (unsigned)n_sites || !proven[site].proven)
        return false;
    uint64_t table = proven[site].table;
    *target = proven[site].relative
                  ? table + (uint64_t)(int64_t) * (const int32_t *)(table + 4 * slot)
                  : *(const uint64_t *)(table + 8 * slot);
    return true;
}

uint64_t table_jump_miss_target(const struct guest_context *ctx)
{
    unsigned site = (uint32_t)(ctx->site_miss >> 32), slot = (uint8_t)ctx->site_miss;
    uint64_t target;
    if (site < (unsigned)n_sites && proven[site].target == TARGET_IN_TABLE &&
        proven_entry(site, slot, &target))
        return target;
    return ctx->ind_target;
}

void table_jump_placed(const struct builder *b, struct fragment *frag)
{
    if (b->site_exit >= 0)
        fragment_exits(frag)[b->site_exit].target_off = 1 + b->site;
}

/* What a proven site's miss stub hands the dispatcher (victim_lookup.S). */
struct exit_record dbo_site_miss_record = {.kind = EXIT_INDIRECT};

void table_jump_learn(struct guest_context *ctx, const struct exit_record *exit,
                      struct fragment *to)
{
    unsigned site, slot;
    if (exit == &dbo_site_miss_record) {
        site = (uint32_t)(ctx->site_miss >> 32), slot = (uint8_t)ctx->site_miss;
        /* Only what its table says: the miss may come from the code of a
         * site since flushed, whose number a new site has now. */
        uint64_t holds;
        if (!proven_entry(site, slot, &holds) || holds != to->guest_pc)
            return;
    } else {
        if (exit->kind != EXIT_INDIRECT || exit->far_target || exit->target_off <= 0)
            return;
        site = (unsigned)exit->target_off - 1;
        if (site >= (unsigned)n_sites || proven[site].untagged)
            return; /* from code flushed since */
        slot = ctx->site_key[site];
    }
    ctx->site_entry[site][slot] = fragment_indirect_entry(to);
    ctx->site_neg_target[site][slot] = -(int64_t)to->guest_pc;
    to->site_target = true;
}

void table_jump_forget(struct guest_context *ctx, uint64_t target)
{
    for (int s = 0; s < sites_touched; s++)
        for (int i = 0; i < SITE_SLOTS; i++)
            if (ctx->site_neg_target[s][i] == -(int64_t)target) {
                ctx->site_neg_target[s][i] = 0;
                if (s < n_sites && proven[s].untagged)
                    ctx->site_entry[s][i] = site_miss_stub(s, proven[s].target);
            }
}

void table_jump_retarget(struct guest_context *ctx, uint64_t target, uint64_t entry)
{
    for (int s = 0; s < sites_touched; s++)
        for (int i = 0; i < SITE_SLOTS; i++)
            if (ctx->site_neg_target[s][i] == -(int64_t)target)
                ctx->site_entry[s][i] = entry;
}

/* Every site's slots, of every site ever used: after a flush, site
 * numbers are given out again. */
void table_jump_clear(struct guest_context *ctx)
{
    for (int s = 0; s < sites_touched; s++) {
        if (s < n_sites && proven[s].untagged)
            empty_proven_site(ctx, s);
        else
            memset(ctx->site_neg_target[s], 0, sizeof ctx->site_neg_target[s]);
    }
}

/* After a flush (the contexts' slots cleared): no site is left. */
void table_jump_flush(void)
{
    n_sites = 0;
}

/* Memory from start on, len bytes, is about to change (unmapped, its
 * protection changed, mapped over): a proven site whose table is there is
 * proven no longer. Its jumps are invalidated (they translate again as
 * the table is then) and its slots emptied for good, for a thread still
 * in their old code: each of its jumps then goes to the dispatcher. */
void table_jump_memory_changes(uint64_t start, uint64_t len)
{
    for (int s = 0; s < n_sites; s++) {
        struct proven_site *ps = &proven[s];
        if (!ps->proven || ps->table >= start + len || ps->table + SITE_SLOTS * 8 <= start)
            continue;
        ps->proven = false;
        site_owner[s] = 0;
        translator_contexts_each(init_proven_site, &s);
        for (int j = 0; j < ps->n_jumps; j++)
            translator_invalidate(ps->jumps[j], 1);
        ps->n_jumps = 0;
    }
}
