/* Rewriting guest instructions that cannot be copied as they are: the
 * rip-relative displacement of a copy rebased, an indirect branch's
 * operand loaded into %rdx, %gs-relative operands computed through a
 * scratch register (the guest's %gs base is virtual), and the one-line
 * error for an instruction dbo cannot translate. translate.c decides which
 * instruction needs which. */
#include <Zydis/Zydis.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "runtime/runtime.h"
#include "translator/builder.h"
#include "translator/emit.h"

_Noreturn void untranslatable(uint64_t pc, const uint8_t *bytes, size_t len, const char *why)
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
void emit_load_operand_rdx(uint8_t **p, const ZydisDecodedInstruction *insn, const uint8_t *bytes,
                           uint64_t guest_next)
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
void emit_copy(uint8_t **p, const ZydisDecodedInstruction *insn, const ZydisDecodedOperand *ops,
               const uint8_t *bytes, uint64_t pc)
{
    (void)ops;
    emit_rebased_copy(p, bytes, insn->length, is_rip_relative(insn), (int32_t)insn->raw.disp.value,
                      insn->raw.disp.offset, pc);
}

/* Where a direct branch goes. What quick_decode filled in is only what it
 * reads here; Zydis's own result goes through Zydis. */
uint64_t branch_target(const ZydisDecodedInstruction *insn, const ZydisDecodedOperand *op,
                       uint64_t pc, bool quick)
{
    if (quick)
        return pc + insn->length + op->imm.value.s;
    uint64_t target = 0;
    ZydisCalcAbsoluteAddress(insn, op, pc, &target);
    return target;
}

bool uses_gs(const ZydisDecodedInstruction *insn)
{
    return insn->attributes & ZYDIS_ATTRIB_HAS_SEGMENT_GS;
}

bool needs_operands(const ZydisDecodedInstruction *insn, bool self_check)
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

int gpr_number(ZydisRegister reg)
{
    ZydisRegister r = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, reg);
    return r >= ZYDIS_REGISTER_RAX && r <= ZYDIS_REGISTER_R15 ? (int)(r - ZYDIS_REGISTER_RAX) : -1;
}

/* A guest instruction with a %gs: memory operand. The guest's %gs base is
 * virtual (the real one is the runtime's), so compute the address into a
 * scratch register and re-encode the instruction to use it:
 *   lea <operand>, S1;  mov %gs:GUEST_GS, S2;  lea (S1,S2), S1;  insn (S1)  */
bool emit_gs_access(uint8_t **p, const ZydisDecodedInstruction *insn,
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
