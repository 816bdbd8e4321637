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
 * matters for speed: a slot holds its target's tag. */
#include <Zydis/Zydis.h>
#include <string.h>

#include "cache/cache.h"
#include "runtime/runtime.h"
#include "translator/builder.h"

static int n_sites;
static int sites_touched;              /* the most sites ever in use: what clearing clears */
static uint64_t site_owner[MAX_SITES]; /* the guest table each site is for, or its jump */

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
        if (writes(&insn, ops, target) &&
            !(relative && insn.mnemonic == ZYDIS_MNEMONIC_ADD && base >= 0 &&
              ops[1].type == ZYDIS_OPERAND_TYPE_REGISTER && gpr_number(ops[1].reg.value) == base))
            return false;
    }
    /* mov %<index>b, %gs:CTX_SITE_KEY, before the load */
    emit_u8(&b->p, GS_PREFIX);
    emit_u8(&b->p, 0x40 | (index >> 3) << 2); /* REX: spl..dil, r8b..r15b */
    emit_u8(&b->p, 0x88);
    emit_u8(&b->p, (uint8_t)(0x04 | (index & 7) << 3));
    emit_u8(&b->p, 0x25);
    emit_u32(&b->p, CTX_SITE_KEY);
    b->table_jump_at = at;
    b->table_jump_table = table;
    b->table_jump_target = target;
    return true;
}

/* movzbl %gs:CTX_SITE_KEY, %ecx */
static void emit_key(uint8_t **p)
{
    static const uint8_t load[] = {GS_PREFIX, 0x0f, 0xb6, 0x0c, 0x25};
    emit_bytes(p, load, sizeof load);
    emit_u32(p, CTX_SITE_KEY);
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
 * each of its handlers). A key is a data or a code address: sharing one by
 * chance would cost misses, not correctness. */
static int site_for(uint64_t key)
{
    for (int s = 0; s < n_sites; s++)
        if (site_owner[s] == key)
            return s;
    if (n_sites == MAX_SITES)
        return -1;
    site_owner[n_sites] = key;
    dbo_stats.table_sites++;
    return n_sites++;
}

bool emit_table_jump(struct builder *b)
{
    int target = b->table_jump_target;
    int site = site_for(b->table_jump_table ? b->table_jump_table : b->table_jump_at);
    if (site < 0)
        return false;
    if (n_sites > sites_touched)
        sites_touched = n_sites;
    int exit = new_exit(b, EXIT_INDIRECT, 0, NULL);
    uint8_t **p = &b->p;
    emit_store_gs(p, GPR_RCX, CTX_SPILL_RCX);
    emit_key(p);
    emit_slot_load(p, SITE_TAGS(site));
    emit_u8(p, 0x48 | (target >> 3) << 1); /* lea (%rcx,%target), %rcx */
    emit_u8(p, 0x8d);
    emit_u8(p, 0x0c);
    emit_u8(p, (uint8_t)((target & 7) << 3 | GPR_RCX));
    static const uint8_t over[] = {0xe3, 0x05}; /* jrcxz +5 */
    emit_bytes(p, over, sizeof over);
    emit_u8(p, 0xe9);
    uint8_t *to_miss = *p;
    emit_u32(p, 0);
    emit_count(p, CTX_IND_HITS);
    emit_count(p, CTX_SITE_HITS);
    emit_key(p);
    emit_slot_load(p, SITE_ENTRIES(site));
    static const uint8_t jmp_rcx[] = {0xff, 0xe1};
    emit_bytes(p, jmp_rcx, sizeof jmp_rcx);
    /* A miss: the thread's table, as any indirect jump; every
     * SITE_LEARN_EVERY-th miss (and a miss there) goes to the dispatcher,
     * which fills the slot. A slot two targets fight over so costs a
     * table lookup more, not a trip through the dispatcher each time. */
    patch_rel32(to_miss, *p);
    emit_store_gs(p, GPR_RDX, CTX_SPILL_RDX);
    emit_u8(p, 0x48 | (target >> 3) << 2); /* mov %target, %rdx */
    emit_u8(p, 0x89);
    emit_u8(p, (uint8_t)(0xc0 | (target & 7) << 3 | GPR_RDX));
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

void table_jump_placed(const struct builder *b, struct fragment *frag)
{
    if (b->site_exit >= 0)
        fragment_exits(frag)[b->site_exit].target_off = 1 + b->site;
}

void table_jump_learn(struct guest_context *ctx, const struct exit_record *exit,
                      struct fragment *to)
{
    if (exit->kind != EXIT_INDIRECT || exit->far_target || exit->target_off <= 0)
        return;
    unsigned site = (unsigned)exit->target_off - 1, slot = (uint8_t)ctx->site_key;
    if (site >= (unsigned)n_sites)
        return; /* from code flushed since */
    ctx->sites[site].entry[slot] = (uint64_t)to->cache_pc - INDIRECT_ENTRY_SIZE;
    ctx->sites[site].neg_target[slot] = -(int64_t)to->guest_pc;
    to->site_target = true;
}

void table_jump_forget(struct guest_context *ctx, uint64_t target)
{
    for (int s = 0; s < sites_touched; s++)
        for (int i = 0; i < SITE_SLOTS; i++)
            if (ctx->sites[s].neg_target[i] == -(int64_t)target)
                ctx->sites[s].neg_target[i] = 0;
}

void table_jump_retarget(struct guest_context *ctx, uint64_t target, uint64_t entry)
{
    for (int s = 0; s < sites_touched; s++)
        for (int i = 0; i < SITE_SLOTS; i++)
            if (ctx->sites[s].neg_target[i] == -(int64_t)target)
                ctx->sites[s].entry[i] = entry;
}

/* Every site's slots, of every site ever used: after a flush, site
 * numbers are given out again. */
void table_jump_clear(struct guest_context *ctx)
{
    for (int s = 0; s < sites_touched; s++)
        memset(ctx->sites[s].neg_target, 0, sizeof ctx->sites[s].neg_target);
}

/* After a flush (the contexts' slots cleared): no site is left. */
void table_jump_flush(void)
{
    n_sites = 0;
}
