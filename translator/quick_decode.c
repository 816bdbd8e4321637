/* A quick decoder for the instructions that make up most of compiled
 * code: those the translator copies as they are (moves, arithmetic, lea,
 * push and pop, movzx/movsx, cmov and setcc, bit scans and tests, the
 * SSE/SSE2/SSSE3/SSE4 instructions of the 0f, 0f38 and 0f3a maps, rep
 * movs/stos, endbr64), with a REX prefix, an operand-size or mandatory
 * prefix (66, f2, f3) and an %fs, %cs or %ds segment override at most,
 * for which it finds the length, ModRM and displacement (a rip-relative
 * one is rebased when copied), which is all a copy needs; the direct
 * branches, calls and returns without a prefix, for which it fills in
 * what the translator reads: mnemonic, category, opcode and the relative
 * immediate (or ret's); and indirect jumps and calls (ff /4, ff /2), with
 * what loading their target reads. Everything else (%gs operands, lock,
 * system calls, VEX and EVEX, the encodings it does not know) is left to
 * Zydis. Zydis takes some 1 000 instructions to decode one here
 * (callgrind), much of it clearing its result; this takes about 100.
 * Branches were half of what went to Zydis in `ls -l` (5 900 of 11 900);
 * prefixed and SSE instructions then most of the rest (libc's string
 * functions, %fs accesses to TLS and the stack guard). tests/unit/
 * test_translator.c checks it against Zydis on real code and on random
 * bytes. */
#include <string.h>

#include "translator/builder.h"

enum shape {
    NONE,      /* not handled here */
    PLAIN,     /* opcode only */
    IMM8,      /* opcode, imm8 */
    IMM_Z,     /* opcode, imm32 (imm16 with a 66 prefix) */
    MOV_IMM,   /* b8+r: imm32, or imm64 with REX.W (imm16 with 66) */
    RM,        /* ModRM */
    RM_IMM8,   /* ModRM, imm8 */
    RM_IMM_Z,  /* ModRM, imm32 (imm16) */
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
    [0x00] = RM, [0x01] = RM, [0x02] = RM, [0x03] = RM, [0x04] = IMM8, [0x05] = IMM_Z,
    [0x08] = RM, [0x09] = RM, [0x0a] = RM, [0x0b] = RM, [0x0c] = IMM8, [0x0d] = IMM_Z,
    [0x10] = RM, [0x11] = RM, [0x12] = RM, [0x13] = RM, [0x14] = IMM8, [0x15] = IMM_Z,
    [0x18] = RM, [0x19] = RM, [0x1a] = RM, [0x1b] = RM, [0x1c] = IMM8, [0x1d] = IMM_Z,
    [0x20] = RM, [0x21] = RM, [0x22] = RM, [0x23] = RM, [0x24] = IMM8, [0x25] = IMM_Z,
    [0x28] = RM, [0x29] = RM, [0x2a] = RM, [0x2b] = RM, [0x2c] = IMM8, [0x2d] = IMM_Z,
    [0x30] = RM, [0x31] = RM, [0x32] = RM, [0x33] = RM, [0x34] = IMM8, [0x35] = IMM_Z,
    [0x38] = RM, [0x39] = RM, [0x3a] = RM, [0x3b] = RM, [0x3c] = IMM8, [0x3d] = IMM_Z,
    /* push, pop */
    [0x50] = PLAIN, [0x51] = PLAIN, [0x52] = PLAIN, [0x53] = PLAIN,
    [0x54] = PLAIN, [0x55] = PLAIN, [0x56] = PLAIN, [0x57] = PLAIN,
    [0x58] = PLAIN, [0x59] = PLAIN, [0x5a] = PLAIN, [0x5b] = PLAIN,
    [0x5c] = PLAIN, [0x5d] = PLAIN, [0x5e] = PLAIN, [0x5f] = PLAIN,
    [0x63] = RM,                                           /* movsxd */
    [0x68] = IMM_Z, [0x6a] = IMM8,                         /* push imm */
    [0x69] = RM_IMM_Z, [0x6b] = RM_IMM8,                   /* imul */
    [0x80] = RM_IMM8, [0x81] = RM_IMM_Z, [0x83] = RM_IMM8, /* group 1 */
    [0x84] = RM, [0x85] = RM, [0x86] = RM, [0x87] = RM,    /* test, xchg */
    [0x88] = RM, [0x89] = RM, [0x8a] = RM, [0x8b] = RM,    /* mov (8d, lea: below) */
    [0x90] = PLAIN, [0x98] = PLAIN, [0x99] = PLAIN,        /* nop, cdqe, cqo */
    [0xa4] = PLAIN, [0xa5] = PLAIN, [0xaa] = PLAIN, [0xab] = PLAIN, /* movs, stos */
    [0xa8] = IMM8, [0xa9] = IMM_Z,                         /* test al/eax */
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

/* The 0f map: which of the prefixes none, 66, f3, f2 (bits 0-3) make an
 * instruction of each opcode that takes a ModRM (and what else it takes,
 * in the high bits). The MMX forms (no prefix) of the SSE2 integer
 * instructions are valid too. */
enum {
    P_NONE = 1,
    P_66 = 2,
    P_F3 = 4,
    P_F2 = 8,
    P_ALL = 15,
    P_SSE = P_NONE | P_66,
    TAKES_IMM8 = 0x10,
    REG_ONLY = 0x20, /* mod 3 only: with a memory operand it is invalid */
    MEM_ONLY = 0x40,
    NO_MODRM = 0x80,
};
/* clang-format off */
static const uint8_t map_0f[256] = {
    [0x10] = P_ALL, [0x11] = P_ALL,                       /* movups/upd/ss/sd */
    [0x14] = P_SSE, [0x15] = P_SSE,                       /* unpcklps... */
    [0x1f] = P_SSE,                                       /* nop r/m */
    [0x28] = P_SSE, [0x29] = P_SSE,                       /* movaps/apd */
    [0x2a] = P_ALL, [0x2c] = P_ALL, [0x2d] = P_ALL,       /* conversions */
    [0x2e] = P_SSE, [0x2f] = P_SSE,                       /* ucomis, comis */
    [0x40] = P_SSE, [0x41] = P_SSE, [0x42] = P_SSE, [0x43] = P_SSE, /* cmovcc */
    [0x44] = P_SSE, [0x45] = P_SSE, [0x46] = P_SSE, [0x47] = P_SSE,
    [0x48] = P_SSE, [0x49] = P_SSE, [0x4a] = P_SSE, [0x4b] = P_SSE,
    [0x4c] = P_SSE, [0x4d] = P_SSE, [0x4e] = P_SSE, [0x4f] = P_SSE,
    [0x51] = P_ALL, [0x52] = P_NONE | P_F3, [0x53] = P_NONE | P_F3, /* sqrt, rsqrt, rcp */
    [0x54] = P_SSE, [0x55] = P_SSE, [0x56] = P_SSE, [0x57] = P_SSE, /* and, andn, or, xor */
    [0x58] = P_ALL, [0x59] = P_ALL, [0x5a] = P_ALL, [0x5b] = P_NONE | P_66 | P_F3,
    [0x5c] = P_ALL, [0x5d] = P_ALL, [0x5e] = P_ALL, [0x5f] = P_ALL,
    [0x60] = P_SSE, [0x61] = P_SSE, [0x62] = P_SSE, [0x63] = P_SSE, /* punpck, pack, pcmpgt */
    [0x64] = P_SSE, [0x65] = P_SSE, [0x66] = P_SSE, [0x67] = P_SSE,
    [0x68] = P_SSE, [0x69] = P_SSE, [0x6a] = P_SSE, [0x6b] = P_SSE,
    [0x6c] = P_66, [0x6d] = P_66, [0x6e] = P_SSE,         /* punpckl/hqdq, movd */
    [0x6f] = P_SSE | P_F3,                                /* movq, movdqa, movdqu */
    [0x70] = P_ALL | TAKES_IMM8,                          /* pshufw/d/hw/lw */
    [0x71] = P_SSE | TAKES_IMM8 | REG_ONLY,               /* shifts by imm8: */
    [0x72] = P_SSE | TAKES_IMM8 | REG_ONLY,               /* shift_group_valid() */
    [0x73] = P_SSE | TAKES_IMM8 | REG_ONLY,
    [0x74] = P_SSE, [0x75] = P_SSE, [0x76] = P_SSE,       /* pcmpeq */
    [0x7e] = P_SSE | P_F3, [0x7f] = P_SSE | P_F3,         /* movd/q, movdqa/u */
    [0x90] = P_NONE, [0x91] = P_NONE, [0x92] = P_NONE, [0x93] = P_NONE, /* setcc */
    [0x94] = P_NONE, [0x95] = P_NONE, [0x96] = P_NONE, [0x97] = P_NONE,
    [0x98] = P_NONE, [0x99] = P_NONE, [0x9a] = P_NONE, [0x9b] = P_NONE,
    [0x9c] = P_NONE, [0x9d] = P_NONE, [0x9e] = P_NONE, [0x9f] = P_NONE,
    [0xa3] = P_SSE, [0xab] = P_SSE, [0xb3] = P_SSE, [0xbb] = P_SSE, /* bt, bts, btr, btc */
    [0xa4] = P_SSE | TAKES_IMM8, [0xac] = P_SSE | TAKES_IMM8,       /* shld, shrd */
    [0xa5] = P_SSE, [0xad] = P_SSE,
    [0xaf] = P_SSE,                                       /* imul */
    [0xb0] = P_SSE, [0xb1] = P_SSE,                       /* cmpxchg */
    [0xb6] = P_SSE, [0xb7] = P_SSE, [0xbe] = P_SSE, [0xbf] = P_SSE, /* movzx, movsx */
    [0xb8] = P_F3,                                        /* popcnt */
    [0xbc] = P_SSE | P_F3, [0xbd] = P_SSE | P_F3,         /* bsf/tzcnt, bsr/lzcnt */
    [0xc0] = P_SSE, [0xc1] = P_SSE,                       /* xadd */
    [0xc2] = P_ALL | TAKES_IMM8,                          /* cmpps... */
    [0xc4] = P_SSE | TAKES_IMM8,                          /* pinsrw */
    [0xc5] = P_SSE | TAKES_IMM8 | REG_ONLY,               /* pextrw */
    [0xc6] = P_SSE | TAKES_IMM8,                          /* shufps/pd */
    [0xc8] = P_NONE | NO_MODRM, [0xc9] = P_NONE | NO_MODRM, /* bswap */
    [0xca] = P_NONE | NO_MODRM, [0xcb] = P_NONE | NO_MODRM,
    [0xcc] = P_NONE | NO_MODRM, [0xcd] = P_NONE | NO_MODRM,
    [0xce] = P_NONE | NO_MODRM, [0xcf] = P_NONE | NO_MODRM,
    [0xd1] = P_SSE, [0xd2] = P_SSE, [0xd3] = P_SSE, [0xd4] = P_SSE, [0xd5] = P_SSE,
    [0xd6] = P_66,                                        /* movq */
    [0xd7] = P_SSE | REG_ONLY,                            /* pmovmskb */
    [0xd8] = P_SSE, [0xd9] = P_SSE, [0xda] = P_SSE, [0xdb] = P_SSE,
    [0xdc] = P_SSE, [0xdd] = P_SSE, [0xde] = P_SSE, [0xdf] = P_SSE,
    [0xe0] = P_SSE, [0xe1] = P_SSE, [0xe2] = P_SSE, [0xe3] = P_SSE, [0xe4] = P_SSE, [0xe5] = P_SSE,
    [0xe6] = P_66 | P_F3 | P_F2,                          /* cvt(t)pd2dq, cvtdq2pd */
    [0xe7] = P_SSE | MEM_ONLY,                            /* movntq, movntdq */
    [0xe8] = P_SSE, [0xe9] = P_SSE, [0xea] = P_SSE, [0xeb] = P_SSE,
    [0xec] = P_SSE, [0xed] = P_SSE, [0xee] = P_SSE, [0xef] = P_SSE,
    [0xf1] = P_SSE, [0xf2] = P_SSE, [0xf3] = P_SSE, [0xf4] = P_SSE, [0xf5] = P_SSE, [0xf6] = P_SSE,
    [0xf8] = P_SSE, [0xf9] = P_SSE, [0xfa] = P_SSE, [0xfb] = P_SSE,
    [0xfc] = P_SSE, [0xfd] = P_SSE, [0xfe] = P_SSE,
};
/* The 0f38 map (SSSE3, SSE4.1/4.2: ModRM, no immediate) and the 0f3a map
 * (ModRM and imm8), by the same prefix bits. */
static const uint8_t map_0f38[256] = {
    [0x00] = P_SSE, [0x01] = P_SSE, [0x02] = P_SSE, [0x03] = P_SSE, /* pshufb, phadd... */
    [0x04] = P_SSE, [0x05] = P_SSE, [0x06] = P_SSE, [0x07] = P_SSE,
    [0x08] = P_SSE, [0x09] = P_SSE, [0x0a] = P_SSE, [0x0b] = P_SSE,
    [0x10] = P_66, [0x14] = P_66, [0x15] = P_66, [0x17] = P_66,     /* blendv, ptest */
    [0x1c] = P_SSE, [0x1d] = P_SSE, [0x1e] = P_SSE,                 /* pabs */
    [0x20] = P_66, [0x21] = P_66, [0x22] = P_66, [0x23] = P_66, [0x24] = P_66, [0x25] = P_66,
    [0x28] = P_66, [0x29] = P_66, [0x2b] = P_66,
    [0x30] = P_66, [0x31] = P_66, [0x32] = P_66, [0x33] = P_66, [0x34] = P_66, [0x35] = P_66,
    [0x37] = P_66, [0x38] = P_66, [0x39] = P_66, [0x3a] = P_66, [0x3b] = P_66,
    [0x3c] = P_66, [0x3d] = P_66, [0x3e] = P_66, [0x3f] = P_66, [0x40] = P_66, [0x41] = P_66,
};
static const uint8_t map_0f3a[256] = {
    [0x08] = P_66, [0x09] = P_66, [0x0a] = P_66, [0x0b] = P_66,     /* round, blend */
    [0x0c] = P_66, [0x0d] = P_66, [0x0e] = P_66, [0x0f] = P_SSE,    /* palignr */
    [0x14] = P_66, [0x15] = P_66, [0x16] = P_66, [0x17] = P_66,     /* pextr, extractps */
    [0x20] = P_66, [0x21] = P_66, [0x22] = P_66,                    /* pinsr, insertps */
    [0x40] = P_66, [0x41] = P_66, [0x42] = P_66, [0x44] = P_66,     /* dpps, pclmulqdq */
    [0x60] = P_66, [0x61] = P_66, [0x62] = P_66, [0x63] = P_66,     /* pcmp[ei]str[im] */
};
/* clang-format on */

/* The shift groups 0f 71-73 (imm8, register operand only): which ModRM
 * reg values make an instruction, without a prefix and with 66. */
static bool shift_group_valid(uint8_t op, bool p66, uint8_t reg)
{
    if (op == 0x73)
        return reg == 2 || reg == 6 || (p66 && (reg == 3 || reg == 7));
    return reg == 2 || reg == 4 || reg == 6;
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

/* A direct branch, call or return without a prefix, for the first bytes
 * lead[] says may start one. */
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

/* The rest of a memory operand after its ModRM byte (at bytes + i, with
 * the ModRM's mod and rm): a SIB byte, a displacement (rip-relative, or
 * disp32 with a SIB and no base), noted in *c. Returns where the
 * instruction goes on. */
static inline size_t read_address(const uint8_t *bytes, size_t i, uint8_t mod, uint8_t rm,
                                  struct quick_copy *c)
{
    size_t disp = mod == 1 ? 1 : mod == 2 ? 4 : 0;
    if (mod != 3 && rm == 4) {
        c->sib_offset = (uint8_t)i;
        if (mod == 0 && (bytes[i] & 7) == 5)
            disp = 4; /* SIB without a base: disp32 */
        i++;
    }
    if (mod == 0 && rm == 5)
        disp = 4; /* rip-relative */
    if (disp) {
        c->disp_offset = (uint8_t)i;
        c->disp_size = (uint8_t)disp;
        if (disp == 1)
            c->disp = (int8_t)bytes[i];
        else
            memcpy(&c->disp, bytes + i, 4);
        i += disp;
    }
    return i;
}

/* An indirect jump or call (ff /4, ff /2) through a register or memory,
 * after a notrack (3e) and a REX prefix at most: what the translator
 * reads to load the target into a register of its own (REX.X and .B,
 * ModRM, SIB and displacement), the operand's kind, and its register. */
static bool quick_indirect(const uint8_t *bytes, ZydisDecodedInstruction *insn,
                           ZydisDecodedOperand *ops)
{
    size_t i = bytes[0] == 0x3e;
    uint8_t rex = 0;
    if ((bytes[i] & 0xf0) == 0x40)
        rex = bytes[i++];
    if (bytes[i] != 0xff)
        return false;
    uint8_t modrm = bytes[i + 1], mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
    if (reg != 2 && reg != 4)
        return false;
    bool is_jump = reg == 4;
    memset(&insn->raw, 0, sizeof insn->raw);
    insn->raw.rex.W = rex >> 3 & 1;
    insn->raw.rex.R = rex >> 2 & 1;
    insn->raw.rex.X = rex >> 1 & 1;
    insn->raw.rex.B = rex & 1;
    insn->raw.modrm.offset = (ZyanU8)(i + 1);
    insn->raw.modrm.mod = mod;
    insn->raw.modrm.reg = reg;
    insn->raw.modrm.rm = rm;
    struct quick_copy c = {0};
    i = read_address(bytes, i + 2, mod, rm, &c);
    insn->raw.sib.offset = c.sib_offset;
    insn->raw.disp.offset = c.disp_offset;
    insn->raw.disp.size = (ZyanU8)(8 * c.disp_size);
    insn->raw.disp.value = c.disp;
    insn->length = (ZyanU8)i;
    insn->mnemonic = is_jump ? ZYDIS_MNEMONIC_JMP : ZYDIS_MNEMONIC_CALL;
    insn->meta.category = is_jump ? ZYDIS_CATEGORY_UNCOND_BR : ZYDIS_CATEGORY_CALL;
    insn->meta.branch_type = ZYDIS_BRANCH_TYPE_NEAR;
    insn->opcode = 0xff;
    insn->attributes = ZYDIS_ATTRIB_HAS_MODRM;
    insn->operand_count = insn->operand_count_visible = 1;
    ops[0].type = mod == 3 ? ZYDIS_OPERAND_TYPE_REGISTER : ZYDIS_OPERAND_TYPE_MEMORY;
    ops[0].reg.value = mod == 3 ? (ZydisRegister)(ZYDIS_REGISTER_RAX + ((rex & 1) << 3 | rm))
                                : ZYDIS_REGISTER_NONE;
    ops[1].type = ops[2].type = ZYDIS_OPERAND_TYPE_UNUSED;
    return true;
}

/* What an instruction's first byte says about it, looked up first: a
 * direct branch, call or return (or 0f, the escape of jcc rel32), a
 * legacy prefix the quick decoder takes, or anything else (a REX prefix,
 * an opcode). */
enum lead { LEAD_OTHER, LEAD_BRANCH, LEAD_ESCAPE, LEAD_PREFIX };
/* clang-format off */
static const uint8_t lead[256] = {
    [0x70] = LEAD_BRANCH, [0x71] = LEAD_BRANCH, [0x72] = LEAD_BRANCH, [0x73] = LEAD_BRANCH,
    [0x74] = LEAD_BRANCH, [0x75] = LEAD_BRANCH, [0x76] = LEAD_BRANCH, [0x77] = LEAD_BRANCH,
    [0x78] = LEAD_BRANCH, [0x79] = LEAD_BRANCH, [0x7a] = LEAD_BRANCH, [0x7b] = LEAD_BRANCH,
    [0x7c] = LEAD_BRANCH, [0x7d] = LEAD_BRANCH, [0x7e] = LEAD_BRANCH, [0x7f] = LEAD_BRANCH,
    [0xe8] = LEAD_BRANCH, [0xe9] = LEAD_BRANCH, [0xeb] = LEAD_BRANCH,
    [0xc2] = LEAD_BRANCH, [0xc3] = LEAD_BRANCH,
    [0x0f] = LEAD_ESCAPE,
    [0x66] = LEAD_PREFIX, [0xf2] = LEAD_PREFIX, [0xf3] = LEAD_PREFIX,
    [0x64] = LEAD_PREFIX, [0x2e] = LEAD_PREFIX, [0x3e] = LEAD_PREFIX,
};
/* clang-format on */

enum scanned {
    SCANNED_NONE,     /* left to Zydis */
    SCANNED_COPY,     /* copied as it is: *c says how long and where its operand is */
    SCANNED_INDIRECT, /* ff /2 or /4, maybe: quick_indirect() */
};

static inline __attribute__((always_inline)) enum scanned
scan_after_prefixes(const uint8_t *bytes, size_t i, uint8_t mandatory, bool segment,
                    struct quick_copy *c);

/* Legacy prefixes: one of 66/f3/f2 and one segment override (not %gs,
 * which the translator rewrites), in either order; then the rest. */
static inline __attribute__((always_inline)) enum scanned scan_prefixed(const uint8_t *bytes,
                                                                        struct quick_copy *c)
{
    size_t i = 0;
    uint8_t mandatory = 0;
    bool segment = false;
    for (;; i++) {
        uint8_t b = bytes[i];
        if ((b == 0x66 || b == 0xf3 || b == 0xf2) && !mandatory)
            mandatory = b;
        else if ((b == 0x64 || b == 0x2e || b == 0x3e) && !segment)
            segment = true;
        else
            break;
    }
    return scan_after_prefixes(bytes, i, mandatory, segment, c);
}

/* The immediate's size of the one-byte opcodes' shapes that need no
 * more than their ModRM to be known, without a legacy prefix; -1: the
 * others (the general scan). */
static const int8_t plain_imm[] = {
    [NONE] = -1,      [PLAIN] = 0,      [IMM8] = 1,      [IMM_Z] = 4,
    [MOV_IMM] = 4,    [RM] = 0,         [RM_IMM8] = 1,   [RM_IMM_Z] = 4,
    [RM_REG0_8] = -1, [RM_REG0_Z] = -1, [GROUP3_8] = -1, [GROUP3_Z] = -1,
};
static const bool shape_has_modrm[] = {[RM] = true, [RM_IMM8] = true, [RM_IMM_Z] = true};

/* The common case, most of what is copied: a REX prefix at most, then a
 * one-byte opcode that plain_imm[] knows (false: ask scan_prefixed()). */
static inline __attribute__((always_inline)) bool quick_copy_common(const uint8_t *bytes,
                                                                    struct quick_copy *c)
{
    size_t i = (bytes[0] & 0xf0) == 0x40;
    uint8_t op = bytes[i];
    enum shape shape = op == 0x8d ? RM : (enum shape)one_byte[op];
    int imm = plain_imm[shape];
    if (imm < 0)
        return false;
    if (shape == MOV_IMM && i && (bytes[0] & 8))
        imm = 8; /* mov $imm64 */
    *c = (struct quick_copy){0}; /* no ModRM, SIB or displacement until found */
    i++;
    if (shape_has_modrm[shape]) {
        uint8_t modrm = bytes[i], mod = modrm >> 6, rm = modrm & 7;
        if (mod == 3 && op == 0x8d)
            return false; /* lea of a register: invalid */
        c->modrm_offset = (uint8_t)i;
        c->modrm = modrm;
        i = read_address(bytes, i + 1, mod, rm, c);
    }
    c->length = (uint8_t)(i + (size_t)imm);
    return true;
}

bool quick_copy(const uint8_t *bytes, size_t avail, struct quick_copy *c)
{
    if (avail < 15)
        return false; /* near the end of executable memory: Zydis checks */
    if (quick_copy_common(bytes, c))
        return true;
    switch (lead[bytes[0]]) {
    case LEAD_BRANCH: return false;
    case LEAD_ESCAPE:
        if ((bytes[1] & 0xf0) == 0x80)
            return false; /* jcc rel32 */
        /* fall through */
    case LEAD_OTHER: return scan_after_prefixes(bytes, 0, 0, false, c) == SCANNED_COPY;
    }
    return scan_prefixed(bytes, c) == SCANNED_COPY;
}

bool quick_decode(const uint8_t *bytes, size_t avail, ZydisDecodedInstruction *insn,
                  ZydisDecodedOperand *ops)
{
    if (avail < 15)
        return false;
    struct quick_copy c;
    enum scanned what;
    switch (lead[bytes[0]]) {
    case LEAD_BRANCH: return quick_branch(bytes, insn, ops);
    case LEAD_ESCAPE:
        if ((bytes[1] & 0xf0) == 0x80)
            return quick_branch(bytes, insn, ops); /* jcc rel32 */
        /* fall through */
    case LEAD_OTHER: what = scan_after_prefixes(bytes, 0, 0, false, &c); break;
    default: what = scan_prefixed(bytes, &c); break;
    }
    if (what == SCANNED_INDIRECT)
        return quick_indirect(bytes, insn, ops);
    if (what == SCANNED_NONE)
        return false;
    insn->length = c.length;
    insn->attributes = c.modrm_offset ? ZYDIS_ATTRIB_HAS_MODRM : 0;
    insn->raw.modrm.offset = c.modrm_offset;
    insn->raw.modrm.mod = c.modrm >> 6;
    insn->raw.modrm.reg = (c.modrm >> 3) & 7;
    insn->raw.modrm.rm = c.modrm & 7;
    insn->raw.sib.offset = c.sib_offset;
    insn->raw.disp.offset = c.disp_offset;
    insn->raw.disp.size = (ZyanU8)(8 * c.disp_size);
    insn->raw.disp.value = c.disp;
    insn->mnemonic = ZYDIS_MNEMONIC_INVALID; /* a copy: which one is not asked */
    insn->meta.category = ZYDIS_CATEGORY_INVALID;
    insn->meta.branch_type = ZYDIS_BRANCH_TYPE_NONE;
    insn->operand_count = 0;
    ops[0].type = ops[1].type = ops[2].type = ZYDIS_OPERAND_TYPE_UNUSED;
    return true;
}

/* The instruction from its REX prefix or opcode on (at bytes + i), after
 * the legacy prefixes: `mandatory` (66, f3, f2 or 0) and a segment
 * override if `segment`. */
static inline __attribute__((always_inline)) enum scanned
scan_after_prefixes(const uint8_t *bytes, size_t i, uint8_t mandatory, bool segment,
                    struct quick_copy *c)
{
    int prefix_bit = mandatory == 0      ? P_NONE
                     : mandatory == 0x66 ? P_66
                     : mandatory == 0xf3 ? P_F3
                                         : P_F2;
    bool endbr = mandatory == 0xf3 && !segment && bytes[i] == 0x0f && bytes[i + 1] == 0x1e &&
                 (bytes[i + 2] == 0xfa || bytes[i + 2] == 0xfb);
    bool rex_w = false;
    if ((bytes[i] & 0xf0) == 0x40) {
        rex_w = bytes[i] & 8;
        i++;
    }
    /* an imm32 is an imm16 with 66, unless REX.W */
    size_t imm_z = mandatory == 0x66 && !rex_w ? 2 : 4;
    enum shape shape;
    uint8_t rules = P_ALL, op = bytes[i];
    bool is_lea = op == 0x8d;
    if (op == 0x0f && !endbr) {
        uint8_t op2 = bytes[i + 1];
        if (op2 == 0x38 || op2 == 0x3a) {
            rules = (op2 == 0x38 ? map_0f38 : map_0f3a)[bytes[i + 2]];
            if (op2 == 0x3a)
                rules |= TAKES_IMM8;
            i += 3;
        } else {
            rules = map_0f[op2];
            i += 2;
        }
        if (!(rules & prefix_bit))
            return SCANNED_NONE;
        shape = rules & NO_MODRM ? PLAIN : rules & TAKES_IMM8 ? RM_IMM8 : RM;
        if (op2 >= 0x71 && op2 <= 0x73 &&
            !shift_group_valid(op2, mandatory == 0x66, (bytes[i] >> 3) & 7))
            return SCANNED_NONE;
    } else if (endbr) {
        shape = RM; /* 0f 1e, ModRM fa or fb */
        i += 2;
    } else if (mandatory == 0xf3 || mandatory == 0xf2) {
        /* rep movs/stos; pause (f3 90) */
        if (mandatory != 0xf3 ||
            !(op == 0xa4 || op == 0xa5 || op == 0xaa || op == 0xab || (op == 0x90 && i == 1)))
            return SCANNED_NONE;
        shape = PLAIN;
        i += 1;
    } else if (op == 0xff) {
        return mandatory ? SCANNED_NONE : SCANNED_INDIRECT;
    } else {
        shape = is_lea ? RM : one_byte[op];
        i += 1;
    }
    if (shape == NONE)
        return SCANNED_NONE;
    *c = (struct quick_copy){0}; /* no ModRM, SIB or displacement until found */
    size_t imm = 0;
    switch (shape) {
    case NONE:
    case PLAIN: break;
    case IMM8: imm = 1; break;
    case IMM_Z: imm = imm_z; break;
    case MOV_IMM: imm = rex_w ? 8 : imm_z; break;
    default: {
        uint8_t modrm = bytes[i];
        uint8_t mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
        if ((rules & REG_ONLY && mod != 3) || (rules & MEM_ONLY && mod == 3))
            return SCANNED_NONE;
        if (shape == RM_REG0_8 || shape == RM_REG0_Z) {
            if (reg != 0)
                return SCANNED_NONE;
            imm = shape == RM_REG0_8 ? 1 : imm_z;
        } else if (shape == GROUP3_8 || shape == GROUP3_Z) {
            if (reg == 1)
                return SCANNED_NONE; /* test's undocumented alias: leave it to Zydis */
            imm = reg != 0 ? 0 : shape == GROUP3_8 ? 1 : imm_z;
        } else {
            imm = shape == RM_IMM8 ? 1 : shape == RM_IMM_Z ? imm_z : 0;
        }
        if (mod == 3 && is_lea)
            return SCANNED_NONE; /* lea of a register: invalid */
        c->modrm_offset = (uint8_t)i;
        c->modrm = modrm;
        i = read_address(bytes, i + 1, mod, rm, c);
        break;
    }
    }
    c->length = (uint8_t)(i + imm);
    return SCANNED_COPY;
}
