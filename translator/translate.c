/* Building fragments: guest code is decoded with Zydis and copied byte for
 * byte into the cache; only control transfers and rip-relative operands are
 * rewritten. A fragment ends at the first control transfer or syscall.
 *
 * Register and flag discipline: translated code may use %rcx and %rdx as
 * scratch only after spilling them to %gs: slots, and never changes flags
 * (the lookup uses movzx/lea/jrcxz). Nothing is ever written to the guest
 * stack except what the guest instruction itself pushes. */
#include "translator/translator.h"

#include <Zydis/Zydis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "translator/emit.h"

#define MAX_FRAGMENT_INSNS 64
#define MAX_FRAGMENT_BYTES 4096 /* worst case for 64 copies plus exits */
#define MAX_EXITS 4 /* taken, fall-through (or return pad), inline target, stale self-check */
#define MAX_LITERALS 2

static ZydisDecoder decoder;
static bool decoder_ready;

struct builder {
    struct guest_context *ctx;
    uint8_t *p; /* emission cursor */
    struct pc_map_entry map[MAX_FRAGMENT_INSNS];
    int n_insns;
    struct exit_record exits[MAX_EXITS];
    int n_exits;
    /* 64-bit constants placed after the code, each read by one rip-relative
     * instruction whose rel32 is patched when they are laid out */
    uint8_t *literal_rel32[MAX_LITERALS];
    uint64_t literal[MAX_LITERALS];
    int n_literals;
    uint8_t *inline_hit_rel32; /* the inline check's jump to its hit block */
    uint8_t *call_code;        /* this fragment's call, with a return pad */
    uint8_t *return_pad;       /* where that call returns to */
    uint64_t return_guest;
};

/* Pushes a 64-bit guest address with a single 8-byte store, flags and
 * registers untouched: `push $imm32` if it sign-extends, else
 * `pushq lit(%rip)`. (Two 4-byte stores, as push+mov would be, make the
 * return's 8-byte load of it miss store forwarding.) */
static void emit_push_u64(struct builder *b, uint64_t v)
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

static void emit_literals(struct builder *b)
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

static struct exit_record *new_exit(struct builder *b, enum exit_kind kind, uint64_t target,
                                    uint8_t *branch_rel32)
{
    struct exit_record *e = &b->exits[b->n_exits++];
    *e = (struct exit_record){.kind = kind, .target = target, .branch_rel32 = branch_rel32};
    return e;
}

/* The exit stub: hand the record to the dispatcher with rcx/rdx spilled.
 * Its 36 bytes also leave room for a far jump when linking. */
static void emit_exit_stub(uint8_t **p, uint64_t record)
{
    emit_store_gs(p, GPR_RCX, CTX_SPILL_RCX);
    emit_store_gs(p, GPR_RDX, CTX_SPILL_RDX);
    emit_mov_rdx_imm64(p, record);
    emit_jmp_gs(p, CTX_EXIT_ENTRY);
}

/* In-cache indirect branch lookup with the guest target in %rdx and the
 * guest's rcx/rdx in their spill slots. Hit: restore both, jump to the
 * fragment. Miss: exit to the dispatcher through `record`. */
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

/* A hit in slot `way`: count it (--stats) and load the entry into rcx. */
static void emit_table_hit(uint8_t **p, int way)
{
    if (dbo_opts.stats) {
        static const uint8_t inc[] = {0x48, 0x8d, 0x49, 0x01}; /* lea 1(%rcx), %rcx */
        emit_load_gs(p, GPR_RCX, CTX_IND_HITS);
        emit_bytes(p, inc, sizeof inc);
        emit_store_gs(p, GPR_RCX, CTX_IND_HITS);
    }
    emit_table_index(p);
    emit_load_table(p, 16 * way + 8);
}

static void emit_indirect_miss(uint8_t **p, uint64_t record)
{
    emit_store_gs(p, GPR_RDX, CTX_IND_TARGET);
    emit_mov_rdx_imm64(p, record);
    emit_jmp_gs(p, CTX_EXIT_ENTRY);
}

/* The whole lookup of the target in %rdx: both probes, the miss exit
 * (after `on_miss`, if any, is copied), then per way the hit path with
 * `tail` emitted after the entry is loaded into rcx. */
static void emit_lookup(uint8_t **p, uint64_t record, const uint8_t *on_miss, size_t on_miss_len,
                        void (*tail)(uint8_t **p, uint16_t arg), uint16_t tail_arg)
{
    uint8_t *jrcxz0 = emit_table_probe(p, 0);
    uint8_t *after0 = *p;
    uint8_t *jrcxz1 = emit_table_probe(p, 1);
    uint8_t *after1 = *p;
    emit_bytes(p, on_miss, on_miss_len);
    emit_indirect_miss(p, record);
    for (int way = 0; way < 2; way++) {
        uint8_t *rel8 = way ? jrcxz1 : jrcxz0;
        int64_t d = *p - (way ? after1 : after0);
        if (d > 127)
            dbo_fatal("indirect lookup too long for jrcxz (%" PRId64 " bytes)", d);
        *rel8 = (uint8_t)d;
        emit_table_hit(p, way);
        tail(p, tail_arg);
    }
}

static void jump_tail(uint8_t **p, uint16_t unused)
{
    (void)unused;
    emit_load_gs(p, GPR_RDX, CTX_SPILL_RDX);
    static const uint8_t jmp_rcx[] = {0xff, 0xe1}; /* jmp *%rcx: its prefix restores rcx */
    emit_bytes(p, jmp_rcx, sizeof jmp_rcx);
}

static void emit_indirect_lookup(uint8_t **p, uint64_t record)
{
    emit_lookup(p, record, NULL, 0, jump_tail, 0);
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
static void emit_inline_check(struct builder *b, struct exit_record *miss)
{
    if (!dbo_opts.inline_targets)
        return;
    while (((uintptr_t)b->p + 2) % 8)
        emit_u8(&b->p, 0x90);
    emit_u8(&b->p, 0x48); /* movabs $0, %rcx */
    emit_u8(&b->p, 0xb9);
    miss->inline_tag = (uint64_t *)b->p;
    emit_u64(&b->p, 0);
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
static void emit_inline_hit(struct builder *b, struct exit_record *miss)
{
    if (!b->inline_hit_rel32)
        return;
    patch_rel32(b->inline_hit_rel32, b->p);
    b->inline_hit_rel32 = NULL;
    if (dbo_opts.stats) {
        static const uint8_t inc[] = {0x48, 0x8d, 0x49, 0x01}; /* lea 1(%rcx), %rcx */
        emit_load_gs(&b->p, GPR_RCX, CTX_INLINE_HITS);
        emit_bytes(&b->p, inc, sizeof inc);
        emit_store_gs(&b->p, GPR_RCX, CTX_INLINE_HITS);
    }
    emit_load_gs(&b->p, GPR_RCX, CTX_SPILL_RCX);
    emit_load_gs(&b->p, GPR_RDX, CTX_SPILL_RDX);
    miss->inline_exit = new_exit(b, EXIT_DIRECT, 0, emit_jmp_rel32(&b->p));
}

static void return_tail(uint8_t **p, uint16_t pop_extra)
{
    static const uint8_t store_ret[] = {0x48, 0x89, 0x0c, 0x24}; /* mov %rcx, (%rsp) */
    emit_bytes(p, store_ret, sizeof store_ret);
    emit_load_gs(p, GPR_RDX, CTX_SPILL_RDX);
    if (pop_extra) {
        emit_u8(p, 0xc2); /* ret $pop_extra */
        emit_u8(p, (uint8_t)pop_extra);
        emit_u8(p, (uint8_t)(pop_extra >> 8));
    } else {
        emit_u8(p, 0xc3);
    }
}

/* A return, guest rcx/rdx spilled. On a table hit the guest's return
 * address on the stack is overwritten with the target's cache entry and a
 * real `ret` goes there: when the target is the pad of the call that
 * pushed it, the host's return-stack predictor has it right. On a miss
 * the return address is popped and the dispatcher finds the target. */
static void emit_return_lookup(uint8_t **p, uint64_t record, uint16_t pop_extra)
{
    static const uint8_t load_ret[] = {0x48, 0x8b, 0x14, 0x24}; /* mov (%rsp), %rdx */
    uint8_t pop_ret[] = {0x48, 0x8d, 0xa4, 0x24, 0, 0, 0, 0};   /* lea 8+extra(%rsp), %rsp */
    uint32_t pop = 8u + pop_extra;
    memcpy(pop_ret + 4, &pop, 4);
    emit_bytes(p, load_ret, sizeof load_ret);
    emit_lookup(p, record, pop_ret, sizeof pop_ret, return_tail, pop_extra);
}

static _Noreturn void untranslatable(uint64_t pc, const uint8_t *bytes, size_t len, const char *why)
{
    char hex[3 * 16 + 1] = "";
    for (size_t i = 0; i < len && i < 15; i++)
        snprintf(hex + 3 * i, 4, "%02x ", bytes[i]);
    if (len)
        hex[3 * (len < 15 ? len : 15) - 1] = 0;
    dbo_fatal("cannot translate instruction at 0x%" PRIx64 " (bytes %s): %s", pc, hex, why);
}

/* mov <the branch's r/m operand>, %rdx — the operand re-encoded from the
 * original bytes: same segment, SIB and displacement, new opcode and reg.
 * A rip-relative displacement is rebased to where this copy sits. */
static void emit_load_operand_rdx(uint8_t **p, const ZydisDecodedInstruction *insn,
                                  const uint8_t *bytes, uint64_t guest_next)
{
    const ZydisDecodedInstructionRaw *raw = &insn->raw;
    uint8_t *start = *p;
    for (int i = 0; i < raw->modrm.offset - 1; i++) {
        uint8_t b = bytes[i];
        if (b == 0x64 || b == 0x67) /* %fs override, address size: keep */
            emit_u8(p, b);
    }
    emit_u8(p, 0x48 | (raw->rex.X << 1) | raw->rex.B);
    emit_u8(p, 0x8b);
    emit_u8(p, (uint8_t)(raw->modrm.mod << 6 | GPR_RDX << 3 | raw->modrm.rm));
    if (raw->modrm.mod != 3 && raw->modrm.rm == 4)
        emit_u8(p, bytes[raw->sib.offset]);
    if (raw->disp.size) {
        bool rip_relative = raw->modrm.mod == 0 && raw->modrm.rm == 5;
        if (rip_relative) {
            uint64_t target = guest_next + raw->disp.value;
            int64_t d = (int64_t)(target - (uint64_t)(*p + 4));
            if (d != (int32_t)d)
                dbo_fatal("rip-relative target 0x%" PRIx64 " out of reach of the cache at %p",
                          target, (void *)start);
            emit_u32(p, (uint32_t)d);
        } else {
            emit_bytes(p, bytes + raw->disp.offset, raw->disp.size / 8);
        }
    }
}

/* In 64-bit mode ModRM mod=00 rm=101 (no SIB) means disp32(%rip), whatever
 * the encoding: known without decoding the operands. */
static bool is_rip_relative(const ZydisDecodedInstruction *insn)
{
    return (insn->attributes & ZYDIS_ATTRIB_HAS_MODRM) && insn->raw.modrm.mod == 0 &&
           insn->raw.modrm.rm == 5;
}

/* Copies an ordinary instruction, rebasing a rip-relative displacement. */
static void emit_copy(uint8_t **p, const ZydisDecodedInstruction *insn,
                      const ZydisDecodedOperand *ops, const uint8_t *bytes, uint64_t pc)
{
    (void)ops;
    uint8_t *start = *p;
    emit_bytes(p, bytes, insn->length);
    if (is_rip_relative(insn)) {
        uint64_t target = pc + insn->length + insn->raw.disp.value;
        int64_t d = (int64_t)(target - (uint64_t)*p);
        if (d != (int32_t)d)
            dbo_fatal("rip-relative target 0x%" PRIx64 " of 0x%" PRIx64
                      " out of reach of the cache at %p",
                      target, pc, (void *)start);
        int32_t d32 = (int32_t)d;
        memcpy(start + insn->raw.disp.offset, &d32, 4);
    }
}

static bool uses_gs(const ZydisDecodedInstruction *insn)
{
    return insn->attributes & ZYDIS_ATTRIB_HAS_SEGMENT_GS;
}

static bool needs_operands(const ZydisDecodedInstruction *insn, bool self_check)
{
    if (self_check || uses_gs(insn) || (insn->attributes & ZYDIS_ATTRIB_IS_RELATIVE))
        return true;
    switch (insn->meta.category) {
    case ZYDIS_CATEGORY_COND_BR:
    case ZYDIS_CATEGORY_UNCOND_BR:
    case ZYDIS_CATEGORY_CALL:
    case ZYDIS_CATEGORY_RET:
    case ZYDIS_CATEGORY_INTERRUPT: return true;
    default: break;
    }
    switch (insn->mnemonic) {
    case ZYDIS_MNEMONIC_RDGSBASE:
    case ZYDIS_MNEMONIC_WRGSBASE:
    case ZYDIS_MNEMONIC_WRFSBASE: return true;
    default: return false;
    }
}

static const ZydisRegister scratch_candidates[] = {
    ZYDIS_REGISTER_RCX, ZYDIS_REGISTER_RDX, ZYDIS_REGISTER_RBX, ZYDIS_REGISTER_RSI,
    ZYDIS_REGISTER_RDI, ZYDIS_REGISTER_R8,  ZYDIS_REGISTER_R9,  ZYDIS_REGISTER_R10,
    ZYDIS_REGISTER_R11, ZYDIS_REGISTER_R12, ZYDIS_REGISTER_R13, ZYDIS_REGISTER_R14,
};

static bool register_used(const ZydisDecodedInstruction *insn, const ZydisDecodedOperand *ops,
                          ZydisRegister reg64)
{
    for (int i = 0; i < insn->operand_count; i++) {
        const ZydisDecodedOperand *o = &ops[i];
        ZydisRegister regs[3] = {ZYDIS_REGISTER_NONE, ZYDIS_REGISTER_NONE, ZYDIS_REGISTER_NONE};
        if (o->type == ZYDIS_OPERAND_TYPE_REGISTER)
            regs[0] = o->reg.value;
        else if (o->type == ZYDIS_OPERAND_TYPE_MEMORY) {
            regs[0] = o->mem.base;
            regs[1] = o->mem.index;
        }
        for (int k = 0; k < 2; k++)
            if (regs[k] != ZYDIS_REGISTER_NONE &&
                ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, regs[k]) == reg64)
                return true;
    }
    return false;
}

static int gpr_number(ZydisRegister reg64)
{
    return ZydisRegisterGetId(reg64);
}

/* A guest instruction with a %gs: memory operand. The guest's %gs base is
 * virtual (the real one is the runtime's), so compute the address into a
 * scratch register and re-encode the instruction to use it:
 *   lea <operand>, S1;  mov %gs:GUEST_GS, S2;  lea (S1,S2), S1;  insn (S1)  */
static bool emit_gs_access(uint8_t **p, const ZydisDecodedInstruction *insn,
                           const ZydisDecodedOperand *ops, uint64_t pc)
{
    int mem = -1;
    for (int i = 0; i < insn->operand_count_visible; i++)
        if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && ops[i].mem.segment == ZYDIS_REGISTER_GS)
            mem = i;
    ZydisRegister s[2];
    int n = 0;
    for (size_t i = 0; i < sizeof scratch_candidates / sizeof *scratch_candidates && n < 2; i++)
        if (!register_used(insn, ops, scratch_candidates[i]))
            s[n++] = scratch_candidates[i];
    if (mem < 0 || n < 2 || insn->encoding != ZYDIS_INSTRUCTION_ENCODING_LEGACY)
        return false;
    ZydisEncoderRequest req;
    if (ZYAN_FAILED(ZydisEncoderDecodedInstructionToEncoderRequest(
            insn, ops, insn->operand_count_visible, &req)))
        return false;
    ZydisEncoderRequest lea = {
        .machine_mode = ZYDIS_MACHINE_MODE_LONG_64,
        .mnemonic = ZYDIS_MNEMONIC_LEA,
        .operand_count = 2,
        .operands =
            {
                {.type = ZYDIS_OPERAND_TYPE_REGISTER, .reg.value = s[0]},
                {.type = ZYDIS_OPERAND_TYPE_MEMORY,
                 .mem = {.base = ops[mem].mem.base,
                         .index = ops[mem].mem.index,
                         .scale = ops[mem].mem.scale,
                         .displacement = ops[mem].mem.disp.value,
                         .size = 8}},
            },
    };
    if (ops[mem].mem.base == ZYDIS_REGISTER_RIP)
        lea.operands[1].mem.displacement = pc + insn->length + ops[mem].mem.disp.value;
    req.prefixes &= ~(ZyanU64)ZYDIS_ATTRIB_HAS_SEGMENT_GS;
    req.operands[mem].mem.base = s[0];
    req.operands[mem].mem.index = ZYDIS_REGISTER_NONE;
    req.operands[mem].mem.scale = 0;
    req.operands[mem].mem.displacement = 0;

    uint8_t *start = *p;
    emit_store_gs(p, gpr_number(s[0]), CTX_SPILL_RCX);
    emit_store_gs(p, gpr_number(s[1]), CTX_SPILL_RDX);
    ZyanUSize len = ZYDIS_MAX_INSTRUCTION_LENGTH;
    if (ZYAN_FAILED(ZydisEncoderEncodeInstructionAbsolute(&lea, *p, &len, (ZyanU64)*p)))
        goto fail;
    *p += len;
    emit_load_gs(p, gpr_number(s[1]), CTX_GUEST_GS);
    int r1 = gpr_number(s[0]), r2 = gpr_number(s[1]);
    emit_u8(p, 0x48 | (r1 >> 3) << 2 | (r2 >> 3) << 1 | (r1 >> 3)); /* lea (S1,S2,1), S1 */
    emit_u8(p, 0x8d);
    emit_u8(p, (uint8_t)((r1 & 7) << 3 | 4));
    emit_u8(p, (uint8_t)((r2 & 7) << 3 | (r1 & 7)));
    len = ZYDIS_MAX_INSTRUCTION_LENGTH;
    if (ZYAN_FAILED(ZydisEncoderEncodeInstruction(&req, *p, &len)))
        goto fail;
    *p += len;
    emit_load_gs(p, gpr_number(s[0]), CTX_SPILL_RCX);
    emit_load_gs(p, gpr_number(s[1]), CTX_SPILL_RDX);
    return true;
fail:
    *p = start;
    return false;
}

bool translator_guest_pc(uint64_t cache_pc, uint64_t *guest_pc, bool *spilled, bool *at_boundary)
{
    struct fragment *f = cache_fragment_at(cache_pc);
    if (!f || !f->n_insns)
        return false;
    uint32_t off = (uint32_t)(cache_pc - (uint64_t)f->cache_pc);
    uint32_t i = 0;
    while (i + 1 < f->n_insns && f->pc_map[i + 1].cache_off <= off)
        i++;
    if (off < f->pc_map[i].cache_off)
        return false;
    *guest_pc = f->guest_pc + f->pc_map[i].guest_off;
    *spilled = f->pc_map[i].spilled;
    *at_boundary = off == f->pc_map[i].cache_off;
    return true;
}

/* The entry check of a fragment from a volatile page: compare the guest
 * bytes with the ones translated, 8 at a time, flag-free (lea/jrcxz); on a
 * difference, exit so the dispatcher retranslates. */
static void emit_self_check(struct builder *b, uint64_t guest_pc, uint64_t guest_end, uint8_t *body,
                            struct exit_record *stale)
{
    emit_store_gs(&b->p, GPR_RCX, CTX_SPILL_RCX);
    emit_store_gs(&b->p, GPR_RDX, CTX_SPILL_RDX);
    uint64_t len = guest_end - guest_pc;
    uint8_t *fail_jumps[128];
    int n_fail = 0;
    for (uint64_t off = 0; off < len; off += 8) {
        uint64_t at = len >= 8 && off + 8 > len ? len - 8 : off; /* last chunk overlaps */
        uint64_t want = 0;
        int size = len >= 8 ? 8 : 1;
        if (size == 8) {
            memcpy(&want, (const void *)(guest_pc + at), 8);
        }
        for (int k = 0; k < (size == 8 ? 1 : (int)len); k++) {
            uint64_t addr = guest_pc + (size == 8 ? at : (uint64_t)k);
            if (size == 8) {
                static const uint8_t load[] = {0x48, 0x8b, 0x0d}; /* mov d(%rip), %rcx */
                emit_bytes(&b->p, load, sizeof load);
            } else {
                static const uint8_t load[] = {0x48, 0x0f, 0xb6, 0x0d}; /* movzbq d(%rip), %rcx */
                emit_bytes(&b->p, load, sizeof load);
                want = *(const uint8_t *)addr;
            }
            emit_u32(&b->p, (uint32_t)(addr - (uint64_t)(b->p + 4)));
            emit_mov_rdx_imm64(&b->p, ~want);
            static const uint8_t cmp[] = {0x48, 0x8d, 0x4c, 0x11, 0x01, /* lea 1(%rcx,%rdx),%rcx */
                                          0xe3, 0x05};                  /* jrcxz +5 */
            emit_bytes(&b->p, cmp, sizeof cmp);
            emit_u8(&b->p, 0xe9);
            fail_jumps[n_fail++] = b->p;
            emit_u32(&b->p, 0);
        }
        if (size == 1 || n_fail >= 120)
            break;
    }
    emit_load_gs(&b->p, GPR_RCX, CTX_SPILL_RCX);
    emit_load_gs(&b->p, GPR_RDX, CTX_SPILL_RDX);
    emit_u8(&b->p, 0xe9);
    patch_rel32(b->p, body);
    b->p += 4;
    for (int i = 0; i < n_fail; i++)
        patch_rel32(fail_jumps[i], b->p);
    stale->stub = b->p;
    emit_mov_rdx_imm64(&b->p, (uint64_t)stale);
    emit_jmp_gs(&b->p, CTX_EXIT_ENTRY);
}

static struct fragment *build_fragment(struct guest_context *ctx, uint64_t guest_pc,
                                       struct cache_chunk *chunk, bool self_check, int max_insns);

/* The push of a call's guest return address. With return pads:
 *       call 1f            real call: the host's return-stack predictor
 *   pad: mov %gs:spill_rcx, %rcx      now expects a return to `pad`
 *       jmp <fragment at the return address>
 *   1:  lea 8(%rsp), %rsp  drop the cache address the call pushed and
 *       push <return address>   push the guest's in its place
 *   (the branch to the callee follows)
 * The pad is also an indirect entry for the return address: the return
 * lookup finds it in the table and returns to it with a real `ret`. */
static void emit_call_push(struct builder *b, uint64_t guest_return)
{
    if (!dbo_opts.return_pads) {
        emit_push_u64(b, guest_return);
        return;
    }
    emit_u8(&b->p, 0xe8);
    uint8_t *call_rel32 = b->p;
    emit_u32(&b->p, 0);
    b->return_pad = b->p;
    b->return_guest = guest_return;
    emit_load_gs(&b->p, GPR_RCX, CTX_SPILL_RCX);
    new_exit(b, EXIT_DIRECT, guest_return, emit_jmp_rel32(&b->p));
    patch_rel32(call_rel32, b->p);
    static const uint8_t drop[] = {0x48, 0x8d, 0x64, 0x24, 0x08}; /* lea 8(%rsp), %rsp */
    emit_bytes(&b->p, drop, sizeof drop);
    emit_push_u64(b, guest_return);
}

static bool writes_memory(const ZydisDecodedInstruction *insn, const ZydisDecodedOperand *ops)
{
    for (int i = 0; i < insn->operand_count; i++)
        if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY &&
            (ops[i].actions & (ZYDIS_OPERAND_ACTION_WRITE | ZYDIS_OPERAND_ACTION_CONDWRITE)))
            return true;
    return false;
}

static bool touches_volatile_page(uint64_t start, uint64_t end)
{
    for (uint64_t pg = start & ~4095ull; pg < end; pg += 4096)
        if (cache_page_volatile(pg))
            return true;
    return false;
}

static struct fragment *translate(struct guest_context *ctx, uint64_t guest_pc, int max_insns);

struct fragment *translate_fragment(struct guest_context *ctx, uint64_t guest_pc)
{
    return translate(ctx, guest_pc, MAX_FRAGMENT_INSNS);
}

struct fragment *translate_single(struct guest_context *ctx, uint64_t guest_pc)
{
    return translate(ctx, guest_pc, 1);
}

static struct fragment *translate(struct guest_context *ctx, uint64_t guest_pc, int max_insns)
{
    uint64_t t0 = dbo_now_ns();
    if (!decoder_ready) {
        ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
        decoder_ready = true;
    }
    if (!guest_vm_executable(guest_pc))
        return NULL;
    struct cache_chunk *chunk = cache_chunk_near(guest_pc, MAX_FRAGMENT_BYTES);
    if (!chunk) { /* full: start over */
        translator_flush(ctx);
        chunk = cache_chunk_near(guest_pc, MAX_FRAGMENT_BYTES);
    }
    if (!chunk)
        dbo_fatal("no code cache memory can be placed near guest code at 0x%" PRIx64, guest_pc);
    struct fragment *frag =
        build_fragment(ctx, guest_pc, chunk, cache_page_volatile(guest_pc), max_insns);
    if (!frag->self_check && touches_volatile_page(frag->guest_pc, frag->guest_end)) {
        /* It ran onto a volatile page: build it again, self-checking. */
        free(frag->exits);
        free(frag->pc_map);
        free(frag);
        frag = build_fragment(ctx, guest_pc, chunk, true, max_insns);
    }
    cache_chunk_commit(chunk, frag->cache_pc + frag->cache_size);
    if (max_insns == MAX_FRAGMENT_INSNS) {
        cache_insert(frag);
        cache_protect_code(frag);
        if (frag->return_pad)
            translator_note_call_site(frag);
    } else {
        cache_insert_transient(frag);
    }

    dbo_stats.fragments_built++;
    dbo_stats.cache_bytes += frag->cache_size;
    dbo_stats.translate_ns += dbo_now_ns() - t0;
    if (dbo_opts.verbose)
        dbo_log("fragment 0x%" PRIx64 "-0x%" PRIx64 " -> %p (%u bytes%s)", frag->guest_pc,
                frag->guest_end, (void *)frag->cache_pc, frag->cache_size,
                frag->self_check ? ", self-checking" : "");
    return frag;
}

static struct fragment *build_fragment(struct guest_context *ctx, uint64_t guest_pc,
                                       struct cache_chunk *chunk, bool self_check, int max_insns)
{
    struct builder b = {.ctx = ctx, .p = cache_chunk_cursor(chunk)};
    /* The indirect entry, just before the fragment: indirect branches jump
     * here through %rcx, which this restores. */
    emit_load_gs(&b.p, GPR_RCX, CTX_SPILL_RCX);
    struct fragment *frag = calloc(1, sizeof *frag);
    frag->exits = calloc(MAX_EXITS, sizeof *frag->exits);
    frag->guest_pc = guest_pc;
    frag->cache_pc = b.p;
    frag->self_check = self_check;
    uint8_t *check_jump = NULL;
    if (self_check) {
        emit_u8(&b.p, 0xe9); /* to the check block, emitted last */
        check_jump = b.p;
        emit_u32(&b.p, 0);
    }
    uint8_t *body = b.p;

    uint64_t pc = guest_pc;
    bool ended = false;
    for (int n = 0; n < max_insns && !ended; n++) {
        uint64_t avail = guest_vm_exec_extent(pc);
        if (avail == 0)
            break; /* ran into non-executable memory: exit there, fault there */
        const uint8_t *bytes = (const uint8_t *)pc;
        ZydisDecodedInstruction insn;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        ZydisDecoderContext dctx;
        if (ZYAN_FAILED(ZydisDecoderDecodeInstruction(&decoder, &dctx, bytes,
                                                      avail < 15 ? avail : 15, &insn))) {
            if (n > 0)
                break; /* let the next fragment report it, at its own address */
            untranslatable(pc, bytes, avail < 15 ? avail : 15, "not a valid x86-64 instruction");
        }
        /* Operands cost as much again to decode: only where the rewrite
         * needs them. Most instructions are copied knowing their length. */
        memset(ops, 0, sizeof ops);
        if (needs_operands(&insn, self_check))
            ZydisDecoderDecodeOperands(&decoder, &dctx, &insn, ops, insn.operand_count);
        uint64_t next = pc + insn.length;
        dbo_stats.guest_instructions++;
        b.map[b.n_insns++] = (struct pc_map_entry){
            .cache_off = (uint16_t)(b.p - frag->cache_pc),
            .guest_off = (uint16_t)(pc - guest_pc),
            .spilled =
                insn.meta.category == ZYDIS_CATEGORY_RET ||
                ((insn.mnemonic == ZYDIS_MNEMONIC_JMP || insn.mnemonic == ZYDIS_MNEMONIC_CALL) &&
                 ops[0].type != ZYDIS_OPERAND_TYPE_IMMEDIATE),
        };
        if (uses_gs(&insn) && insn.meta.category != ZYDIS_CATEGORY_COND_BR &&
            insn.meta.category != ZYDIS_CATEGORY_UNCOND_BR &&
            insn.meta.category != ZYDIS_CATEGORY_CALL && insn.meta.category != ZYDIS_CATEGORY_RET) {
            if (!emit_gs_access(&b.p, &insn, ops, pc))
                untranslatable(pc, bytes, insn.length,
                               "this %gs-relative instruction is not emulated");
            pc = next;
            continue;
        }

        switch (insn.mnemonic) {
        case ZYDIS_MNEMONIC_JMP:
        case ZYDIS_MNEMONIC_CALL:
            if (insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR)
                untranslatable(pc, bytes, insn.length, "far control transfer");
            bool indirect = ops[0].type != ZYDIS_OPERAND_TYPE_IMMEDIATE;
            if (insn.mnemonic == ZYDIS_MNEMONIC_CALL && dbo_opts.return_pads) {
                /* One pad per return address: if a live fragment already
                 * translates this call, go there. */
                struct fragment *site =
                    max_insns == MAX_FRAGMENT_INSNS ? cache_call_site(next) : NULL;
                if (site && !site->dead && fits_rel32(b.p + 5, site->call_code)) {
                    b.map[b.n_insns - 1].spilled = false;
                    emit_u8(&b.p, 0xe9);
                    patch_rel32(b.p, site->call_code);
                    b.p += 4;
                    ended = true;
                    break;
                }
                b.call_code = b.p;
            }
            if (indirect) {
                emit_store_gs(&b.p, GPR_RCX, CTX_SPILL_RCX);
                emit_store_gs(&b.p, GPR_RDX, CTX_SPILL_RDX);
                emit_load_operand_rdx(&b.p, &insn, bytes, next);
            }
            if (insn.mnemonic == ZYDIS_MNEMONIC_CALL)
                emit_call_push(&b, next);
            if (indirect) {
                struct exit_record *e = new_exit(&b, EXIT_INDIRECT, 0, NULL);
                emit_inline_check(&b, e);
                emit_indirect_lookup(&b.p, (uint64_t)(frag->exits + (e - b.exits)));
                emit_inline_hit(&b, e);
            } else {
                uint64_t target;
                ZydisCalcAbsoluteAddress(&insn, &ops[0], pc, &target);
                new_exit(&b, EXIT_DIRECT, target, emit_jmp_rel32(&b.p));
            }
            ended = true;
            break;
        case ZYDIS_MNEMONIC_RET: {
            if (insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR)
                untranslatable(pc, bytes, insn.length, "far return");
            uint16_t pop_extra =
                ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE ? (uint16_t)ops[0].imm.value.u : 0;
            emit_store_gs(&b.p, GPR_RCX, CTX_SPILL_RCX);
            emit_store_gs(&b.p, GPR_RDX, CTX_SPILL_RDX);
            struct exit_record *e = new_exit(&b, EXIT_INDIRECT, 0, NULL);
            uint64_t record = (uint64_t)(frag->exits + (e - b.exits));
            if (!dbo_opts.return_pads) {
                static const uint8_t load_ret[] = {0x48, 0x8b, 0x14, 0x24}; /* mov (%rsp), %rdx */
                static const uint8_t pop_ret[] = {0x48, 0x8d, 0xa4, 0x24};  /* lea d(%rsp), %rsp */
                emit_bytes(&b.p, load_ret, sizeof load_ret);
                emit_bytes(&b.p, pop_ret, sizeof pop_ret);
                emit_u32(&b.p, 8u + pop_extra);
                emit_inline_check(&b, e);
                emit_indirect_lookup(&b.p, record);
                emit_inline_hit(&b, e);
            } else {
                emit_return_lookup(&b.p, record, pop_extra);
            }
            ended = true;
            break;
        }
        case ZYDIS_MNEMONIC_SYSCALL: {
            struct exit_record *e = new_exit(&b, EXIT_SYSCALL, next, NULL);
            e->stub = b.p;
            emit_exit_stub(&b.p, (uint64_t)(frag->exits + (e - b.exits)));
            ended = true;
            break;
        }
        case ZYDIS_MNEMONIC_JRCXZ:
        case ZYDIS_MNEMONIC_JECXZ:
        case ZYDIS_MNEMONIC_LOOP:
        case ZYDIS_MNEMONIC_LOOPE:
        case ZYDIS_MNEMONIC_LOOPNE: {
            /* Only rel8 forms exist: branch over a fall-through jump. */
            uint64_t target;
            ZydisCalcAbsoluteAddress(&insn, &ops[0], pc, &target);
            emit_bytes(&b.p, bytes, insn.length - 1);
            uint8_t *rel8 = b.p++;
            new_exit(&b, EXIT_DIRECT, next, emit_jmp_rel32(&b.p));
            *rel8 = (uint8_t)(b.p - (rel8 + 1));
            new_exit(&b, EXIT_DIRECT, target, emit_jmp_rel32(&b.p));
            ended = true;
            break;
        }
        case ZYDIS_MNEMONIC_SYSENTER:
        case ZYDIS_MNEMONIC_SYSEXIT:
        case ZYDIS_MNEMONIC_SYSRET:
        case ZYDIS_MNEMONIC_IRET:
        case ZYDIS_MNEMONIC_IRETD:
        case ZYDIS_MNEMONIC_IRETQ:
        case ZYDIS_MNEMONIC_XBEGIN:
            untranslatable(pc, bytes, insn.length, "instruction not supported by dbo");
        case ZYDIS_MNEMONIC_WRFSBASE: {
            /* Runs as is; without FSGSBASE switching the runtime does not
             * read %fs back on exit, so keep its copy current too. */
            emit_copy(&b.p, &insn, ops, bytes, pc);
            if (!ctx->use_fsgsbase) {
                ZydisRegister reg =
                    ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, ops[0].reg.value);
                emit_store_gs(&b.p, gpr_number(reg), CTX_GUEST_FS);
            }
            break;
        }
        case ZYDIS_MNEMONIC_RDGSBASE:
        case ZYDIS_MNEMONIC_WRGSBASE: {
            /* The guest's %gs base is virtual: a slot in the context. */
            ZydisRegister reg =
                ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, ops[0].reg.value);
            if (insn.mnemonic == ZYDIS_MNEMONIC_RDGSBASE)
                emit_load_gs(&b.p, gpr_number(reg), CTX_GUEST_GS);
            else
                emit_store_gs(&b.p, gpr_number(reg), CTX_GUEST_GS);
            break;
        }
        case ZYDIS_MNEMONIC_INT:
            if (ops[0].imm.value.u == 0x80)
                untranslatable(pc, bytes, insn.length,
                               "32-bit system calls (int $0x80) are not supported");
            emit_copy(&b.p, &insn, ops, bytes, pc);
            break;
        default:
            if (insn.meta.category == ZYDIS_CATEGORY_COND_BR) {
                uint64_t target;
                ZydisCalcAbsoluteAddress(&insn, &ops[0], pc, &target);
                new_exit(&b, EXIT_DIRECT, target, emit_jcc_rel32(&b.p, insn.opcode & 0x0f));
                new_exit(&b, EXIT_DIRECT, next, emit_jmp_rel32(&b.p));
                ended = true;
                break;
            }
            if ((insn.attributes & ZYDIS_ATTRIB_IS_RELATIVE) &&
                !(ops[0].type == ZYDIS_OPERAND_TYPE_MEMORY ||
                  ops[1].type == ZYDIS_OPERAND_TYPE_MEMORY ||
                  ops[2].type == ZYDIS_OPERAND_TYPE_MEMORY))
                untranslatable(pc, bytes, insn.length, "unhandled relative instruction");
            emit_copy(&b.p, &insn, ops, bytes, pc);
            /* On a volatile page a store may rewrite the code that follows:
             * end here, so the next fragment checks its bytes first. */
            if (self_check && writes_memory(&insn, ops)) {
                new_exit(&b, EXIT_DIRECT, next, emit_jmp_rel32(&b.p));
                ended = true;
            }
            break;
        }
        pc = next;
    }
    if (!ended)
        new_exit(&b, EXIT_DIRECT, pc, emit_jmp_rel32(&b.p));

    /* Stubs for the exits that branch; then publish the records. */
    for (int i = 0; i < b.n_exits; i++) {
        struct exit_record *e = &b.exits[i];
        e->from = frag;
        if (!e->branch_rel32)
            continue;
        e->stub = b.p;
        patch_rel32(e->branch_rel32, e->stub);
        emit_exit_stub(&b.p, (uint64_t)(frag->exits + i));
    }
    emit_literals(&b);
    if (self_check) {
        patch_rel32(check_jump, b.p);
        struct exit_record *stale = new_exit(&b, EXIT_STALE, guest_pc, NULL);
        stale->from = frag;
        emit_self_check(&b, guest_pc, pc, body, frag->exits + (stale - b.exits));
    }
    memcpy(frag->exits, b.exits, sizeof b.exits);
    for (int i = 0; i < b.n_exits; i++)
        if (frag->exits[i].inline_exit)
            frag->exits[i].inline_exit = frag->exits + (b.exits[i].inline_exit - b.exits);
    frag->n_exits = b.n_exits;
    frag->n_insns = b.n_insns;
    frag->pc_map = malloc(b.n_insns * sizeof *frag->pc_map);
    memcpy(frag->pc_map, b.map, b.n_insns * sizeof *frag->pc_map);
    frag->guest_end = pc;
    frag->cache_size = (uint32_t)(b.p - frag->cache_pc);
    frag->call_code = b.call_code;
    frag->return_pad = b.return_pad;
    frag->return_guest = b.return_guest;
    return frag;
}
