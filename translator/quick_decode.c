/* A quick decoder for the instructions that make up most of compiled
 * code: those the translator copies as they are (moves, arithmetic, lea,
 * push and pop, movzx/movsx, cmov and setcc, with a REX prefix at most),
 * for which it finds the length, ModRM and displacement (a rip-relative
 * one is rebased when copied), which is all a copy needs; and the direct
 * branches, calls and returns without a prefix, for which it fills in
 * what the translator reads: mnemonic, category, opcode and the relative
 * immediate (or ret's). Everything else (any legacy prefix, indirect
 * branches, system calls, the encodings it does not know) is left to
 * Zydis. Zydis takes some 110 ns an instruction here, much of it clearing
 * its result; this takes a few. Branches were half of what went to Zydis
 * in `ls -l` (5 900 of 11 900). tests/unit/test_translator.c checks it
 * against Zydis on real code and on random bytes. */
#include <string.h>

#include "translator/builder.h"

enum shape {
    NONE,      /* not handled here */
    PLAIN,     /* opcode only */
    IMM8,      /* opcode, imm8 */
    IMM32,     /* opcode, imm32 */
    MOV_IMM,   /* b8+r: imm32, or imm64 with REX.W */
    RM,        /* ModRM */
    RM_IMM8,   /* ModRM, imm8 */
    RM_IMM32,  /* ModRM, imm32 */
    RM_REG0_8, /* ModRM with reg 0, imm8 (c6 /0: c6 f8 is xabort) */
    RM_REG0_Z, /* ModRM with reg 0, imm32 (c7 /0: c7 f8 is xbegin) */
    GROUP3_8,  /* f6: test /0 /1 take an imm8, not/neg/mul/div none */
    GROUP3_Z,  /* f7: the same with imm32 */
};

/* One-byte opcodes. Group ff (calls and jumps among them), 8f, fe and
 * everything with implicit stack or control effects beyond push/pop/leave
 * are NONE. */
/* clang-format off */
static const uint8_t one_byte[256] = {
    /* add, or, adc, sbb, and, sub, xor, cmp: r/m forms, al/eax imm forms */
    [0x00] = RM, [0x01] = RM, [0x02] = RM, [0x03] = RM, [0x04] = IMM8, [0x05] = IMM32,
    [0x08] = RM, [0x09] = RM, [0x0a] = RM, [0x0b] = RM, [0x0c] = IMM8, [0x0d] = IMM32,
    [0x10] = RM, [0x11] = RM, [0x12] = RM, [0x13] = RM, [0x14] = IMM8, [0x15] = IMM32,
    [0x18] = RM, [0x19] = RM, [0x1a] = RM, [0x1b] = RM, [0x1c] = IMM8, [0x1d] = IMM32,
    [0x20] = RM, [0x21] = RM, [0x22] = RM, [0x23] = RM, [0x24] = IMM8, [0x25] = IMM32,
    [0x28] = RM, [0x29] = RM, [0x2a] = RM, [0x2b] = RM, [0x2c] = IMM8, [0x2d] = IMM32,
    [0x30] = RM, [0x31] = RM, [0x32] = RM, [0x33] = RM, [0x34] = IMM8, [0x35] = IMM32,
    [0x38] = RM, [0x39] = RM, [0x3a] = RM, [0x3b] = RM, [0x3c] = IMM8, [0x3d] = IMM32,
    /* push, pop */
    [0x50] = PLAIN, [0x51] = PLAIN, [0x52] = PLAIN, [0x53] = PLAIN,
    [0x54] = PLAIN, [0x55] = PLAIN, [0x56] = PLAIN, [0x57] = PLAIN,
    [0x58] = PLAIN, [0x59] = PLAIN, [0x5a] = PLAIN, [0x5b] = PLAIN,
    [0x5c] = PLAIN, [0x5d] = PLAIN, [0x5e] = PLAIN, [0x5f] = PLAIN,
    [0x63] = RM,                                           /* movsxd */
    [0x69] = RM_IMM32, [0x6b] = RM_IMM8,                   /* imul */
    [0x80] = RM_IMM8, [0x81] = RM_IMM32, [0x83] = RM_IMM8, /* group 1 */
    [0x84] = RM, [0x85] = RM, [0x86] = RM, [0x87] = RM,    /* test, xchg */
    [0x88] = RM, [0x89] = RM, [0x8a] = RM, [0x8b] = RM,    /* mov (8d, lea: below) */
    [0x90] = PLAIN, [0x98] = PLAIN, [0x99] = PLAIN,        /* nop, cdqe, cqo */
    [0xa8] = IMM8, [0xa9] = IMM32,                         /* test al/eax */
    [0xb0] = IMM8, [0xb1] = IMM8, [0xb2] = IMM8, [0xb3] = IMM8,
    [0xb4] = IMM8, [0xb5] = IMM8, [0xb6] = IMM8, [0xb7] = IMM8,
    [0xb8] = MOV_IMM, [0xb9] = MOV_IMM, [0xba] = MOV_IMM, [0xbb] = MOV_IMM,
    [0xbc] = MOV_IMM, [0xbd] = MOV_IMM, [0xbe] = MOV_IMM, [0xbf] = MOV_IMM,
    [0xc0] = RM_IMM8, [0xc1] = RM_IMM8,                    /* shifts */
    [0xc6] = RM_REG0_8, [0xc7] = RM_REG0_Z,                /* mov imm */
    [0xc9] = PLAIN,                                        /* leave */
    [0xd0] = RM, [0xd1] = RM, [0xd2] = RM, [0xd3] = RM,    /* shifts */
    [0xf6] = GROUP3_8, [0xf7] = GROUP3_Z,
};
/* clang-format on */

static enum shape two_byte(uint8_t op)
{
    if ((op & 0xf0) == 0x40 || (op & 0xf0) == 0x90) /* cmovcc, setcc */
        return RM;
    switch (op) {
    case 0x1f: /* nop r/m */
    case 0xaf: /* imul */
    case 0xb6: /* movzx */
    case 0xb7:
    case 0xbe: /* movsx */
    case 0xbf: return RM;
    default: return NONE;
    }
}

/* clang-format off */
static const ZydisMnemonic jcc_mnemonics[16] = {
    ZYDIS_MNEMONIC_JO, ZYDIS_MNEMONIC_JNO, ZYDIS_MNEMONIC_JB, ZYDIS_MNEMONIC_JNB,
    ZYDIS_MNEMONIC_JZ, ZYDIS_MNEMONIC_JNZ, ZYDIS_MNEMONIC_JBE, ZYDIS_MNEMONIC_JNBE,
    ZYDIS_MNEMONIC_JS, ZYDIS_MNEMONIC_JNS, ZYDIS_MNEMONIC_JP, ZYDIS_MNEMONIC_JNP,
    ZYDIS_MNEMONIC_JL, ZYDIS_MNEMONIC_JNL, ZYDIS_MNEMONIC_JLE, ZYDIS_MNEMONIC_JNLE,
};
/* clang-format on */

/* A branch: the instruction's length, what it is and its immediate. */
static void set_branch(ZydisDecodedInstruction *insn, ZydisDecodedOperand *ops, int length,
                       ZydisMnemonic mnemonic, ZydisInstructionCategory category, uint8_t opcode,
                       int64_t imm, bool relative)
{
    insn->length = (ZyanU8)length;
    insn->mnemonic = mnemonic;
    insn->meta.category = category;
    insn->meta.branch_type = ZYDIS_BRANCH_TYPE_NEAR;
    insn->opcode = opcode;
    insn->attributes = relative ? ZYDIS_ATTRIB_IS_RELATIVE : 0;
    insn->raw.disp.size = 0;
    insn->raw.modrm.offset = 0;
    insn->operand_count = insn->operand_count_visible = length > 1;
    ops[0].type = length > 1 ? ZYDIS_OPERAND_TYPE_IMMEDIATE : ZYDIS_OPERAND_TYPE_UNUSED;
    ops[0].imm.is_relative = relative;
    ops[0].imm.is_signed = relative;
    ops[0].imm.value.s = imm;
    ops[1].type = ops[2].type = ZYDIS_OPERAND_TYPE_UNUSED;
}

static int32_t read_rel32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static bool quick_branch(const uint8_t *bytes, ZydisDecodedInstruction *insn,
                         ZydisDecodedOperand *ops)
{
    uint8_t op = bytes[0];
    if ((op & 0xf0) == 0x70)
        set_branch(insn, ops, 2, jcc_mnemonics[op & 15], ZYDIS_CATEGORY_COND_BR, op,
                   (int8_t)bytes[1], true);
    else if (op == 0x0f && (bytes[1] & 0xf0) == 0x80)
        set_branch(insn, ops, 6, jcc_mnemonics[bytes[1] & 15], ZYDIS_CATEGORY_COND_BR, bytes[1],
                   read_rel32(bytes + 2), true);
    else if (op == 0xeb)
        set_branch(insn, ops, 2, ZYDIS_MNEMONIC_JMP, ZYDIS_CATEGORY_UNCOND_BR, op, (int8_t)bytes[1],
                   true);
    else if (op == 0xe9)
        set_branch(insn, ops, 5, ZYDIS_MNEMONIC_JMP, ZYDIS_CATEGORY_UNCOND_BR, op,
                   read_rel32(bytes + 1), true);
    else if (op == 0xe8)
        set_branch(insn, ops, 5, ZYDIS_MNEMONIC_CALL, ZYDIS_CATEGORY_CALL, op,
                   read_rel32(bytes + 1), true);
    else if (op == 0xc3)
        set_branch(insn, ops, 1, ZYDIS_MNEMONIC_RET, ZYDIS_CATEGORY_RET, op, 0, false);
    else if (op == 0xc2)
        set_branch(insn, ops, 3, ZYDIS_MNEMONIC_RET, ZYDIS_CATEGORY_RET, op,
                   bytes[1] | bytes[2] << 8, false);
    else
        return false;
    return true;
}

bool quick_decode(const uint8_t *bytes, size_t avail, ZydisDecodedInstruction *insn,
                  ZydisDecodedOperand *ops)
{
    if (avail < 15)
        return false; /* near the end of executable memory: Zydis checks */
    if (quick_branch(bytes, insn, ops))
        return true;
    ops[0].type = ops[1].type = ops[2].type = ZYDIS_OPERAND_TYPE_UNUSED;
    size_t i = 0;
    bool rex_w = false;
    if ((bytes[0] & 0xf0) == 0x40) {
        rex_w = bytes[0] & 8;
        i = 1;
    }
    enum shape shape;
    bool is_lea = bytes[i] == 0x8d;
    if (bytes[i] == 0x0f) {
        shape = two_byte(bytes[i + 1]);
        i += 2;
    } else {
        shape = is_lea ? RM : one_byte[bytes[i]];
        i += 1;
    }
    if (shape == NONE)
        return false;
    insn->attributes = 0;
    insn->raw.disp.size = 0;
    insn->raw.disp.offset = 0;
    insn->raw.disp.value = 0;
    insn->raw.modrm.offset = 0;
    size_t imm = 0;
    switch (shape) {
    case PLAIN: break;
    case IMM8: imm = 1; break;
    case IMM32: imm = 4; break;
    case MOV_IMM: imm = rex_w ? 8 : 4; break;
    default: {
        uint8_t modrm = bytes[i];
        uint8_t mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
        if (shape == RM_REG0_8 || shape == RM_REG0_Z) {
            if (reg != 0)
                return false;
            imm = shape == RM_REG0_8 ? 1 : 4;
        } else if (shape == GROUP3_8 || shape == GROUP3_Z) {
            if (reg == 1)
                return false; /* test's undocumented alias: leave it to Zydis */
            imm = reg != 0 ? 0 : shape == GROUP3_8 ? 1 : 4;
        } else {
            imm = shape == RM_IMM8 ? 1 : shape == RM_IMM32 ? 4 : 0;
        }
        insn->attributes = ZYDIS_ATTRIB_HAS_MODRM;
        insn->raw.modrm.offset = (ZyanU8)i;
        insn->raw.modrm.mod = mod;
        insn->raw.modrm.reg = reg;
        insn->raw.modrm.rm = rm;
        i++;
        size_t disp = mod == 1 ? 1 : mod == 2 ? 4 : 0;
        if (mod != 3 && rm == 4) {
            if (mod == 0 && (bytes[i] & 7) == 5)
                disp = 4; /* SIB without a base: disp32 */
            i++;
        }
        if (mod == 0 && rm == 5)
            disp = 4; /* rip-relative */
        if (mod == 3 && is_lea)
            return false; /* lea of a register: invalid */
        if (disp) {
            insn->raw.disp.offset = (ZyanU8)i;
            insn->raw.disp.size = (ZyanU8)(8 * disp);
            if (disp == 1)
                insn->raw.disp.value = (int8_t)bytes[i];
            else {
                int32_t d;
                memcpy(&d, bytes + i, 4);
                insn->raw.disp.value = d;
            }
            i += disp;
        }
        break;
    }
    }
    insn->length = (ZyanU8)(i + imm);
    insn->mnemonic = ZYDIS_MNEMONIC_INVALID; /* a copy: which one is not asked */
    insn->meta.category = ZYDIS_CATEGORY_INVALID;
    insn->meta.branch_type = ZYDIS_BRANCH_TYPE_NONE;
    insn->operand_count = 0;
    return true;
}
