/* The state of one fragment being built, shared by translate.c (guest
 * instructions) and indirect.c (calls, returns and indirect branches).
 * Internal to translator/. Exits are referred to by index while the
 * fragment is built: the record addresses that code hands the dispatcher
 * are patched in once the fragment's single allocation exists. */
#ifndef DBO_TRANSLATOR_BUILDER_H
#define DBO_TRANSLATOR_BUILDER_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <Zydis/Zydis.h>

#include "cache/cache.h"
#include "runtime/runtime.h"
#include "translator/emit.h"
#include "translator/translator.h"

#define MAX_FRAGMENT_INSNS 64
#define MAX_FRAGMENT_BYTES 4096 /* worst case for 64 copies plus exits */
/* A piece of cold code is written this far below the cold code so far,
 * then moved up to meet it (see cold_begin): room the chunk must have too. */
#define MAX_COLD_PIECE 256
/* A trace: up to TRACE_MAX_BLOCKS blocks of up to 64 instructions, cut
 * short where its code reaches TRACE_BODY_BYTES (its stubs and the lookups
 * behind its guards come after the body). */
#define MAX_TRACE_INSNS 256
#define TRACE_BODY_BYTES 10240
#define MAX_TRACE_BYTES 16384
_Static_assert(MAX_TRACE_BYTES < 32768, "insn_mark.cache_off has 15 bits");

/* What a guest instruction's code is, for --perf-map (perf_map.c). */
enum code_kind {
    CODE_GUEST,    /* the guest's own instruction, copied (or rewritten in place) */
    CODE_ENTRY,    /* a fragment's indirect entry and entry check */
    CODE_BRANCH,   /* a direct branch: its jcc/jmp rel32 and exit jump */
    CODE_CALL,     /* a direct call: the push of its return address */
    CODE_RETURN,   /* a return: the lookup of its target (or its guard) */
    CODE_INDIRECT, /* an indirect jump or call: the lookup of its target */
    CODE_SYSCALL,  /* a system call through the gate */
    CODE_COLD,     /* exit stubs and lookup misses, apart from the hot code */
    CODE_COUNTER,  /* a trace head's counter */
};

/* Where the builder put each guest instruction's code; made the
 * fragment's pc map (cache.h) when it is done. */
struct insn_mark {
    uint16_t cache_off : 15;
    uint16_t spilled : 1;
    uint16_t guest_off;
};
/* superblock: those branches, then taken, fall-through (or return pad),
 * inline target, stale self-check; trace: one side exit or guard per
 * block, the final exit */
#define MAX_EXITS 40
_Static_assert(MAX_EXITS < 64 && MAX_TRACE_INSNS <= UINT16_MAX && TRACE_MAX_BLOCKS <= UINT8_MAX,
               "the counts fit struct fragment (cache.h)");
_Static_assert(MAX_EXITS < 255, "exit_record.slot is a byte");
#define MAX_LITERALS (TRACE_MAX_BLOCKS + 2)
#define MAX_RECORD_REFS (2 * MAX_EXITS)

enum build_mode {
    BUILD_FRAGMENT, /* the usual: a superblock, in the table */
    BUILD_SINGLE,   /* one instruction, not in the table (translate_single) */
    BUILD_RECORD,   /* a basic block run once while a trace is recorded */
    BUILD_TRACE,    /* a trace along a recorded path */
};

/* An exit while its fragment is built: where its code is, which
 * place_exits() turns into its record's offsets. */
struct exit_draft {
    uint64_t target;
    uint8_t *branch_rel32; /* the rel32 in the body that reaches the stub */
    union {
        uint8_t *stub;        /* a direct exit's stub */
        uint64_t *inline_tag; /* an indirect exit's inline check's imm64 */
    };
    enum exit_kind kind;
    bool id_stub;         /* its stub is emit_exit_stub's, to get the exit's id */
    bool linked_at_birth; /* to code translated already: no stub (translate.c) */
};

/* A guard of a trace: its miss path, the table lookup, comes after the body. */
struct trace_guard {
    uint8_t *miss_rel32;
    int exit;
    bool is_return;
    uint16_t pop_extra;
};

struct builder {
    struct guest_context *ctx;
    enum build_mode mode;
    uint8_t *start; /* the fragment's entry */
    uint8_t *p;     /* emission cursor */
    /* Cold code (stubs, lookup misses) grows down from the chunk's cold
     * start: `cold` is the lowest byte of it so far. While a cold piece is
     * emitted, p is in it and hot_p keeps the hot cursor. */
    uint8_t *cold;
    uint8_t *cold_piece, *hot_p;
    int cold_piece_refs;
    int n_insns;
    int n_ranges;
    int n_guards;
    int call_depth;    /* traces: calls followed and not returned from */
    uint8_t ends_with; /* enum fragment_end */
    bool whole_only;   /* code relies on instructions before it (struct fragment) */
    int n_exits;
    int n_record_refs;
    int n_literals;
    uint8_t *inline_hit_rel32; /* the inline check's jump to its hit block */
    int site_exit, site;       /* a jump-table site's miss exit (-1: none) and site */
    /* table_jump_lookahead() saw a table load feeding the jump at
     * table_jump_at (0: none), through the register table_jump_target */
    uint64_t table_jump_at;
    int table_jump_target, table_jump_site;
    int table_jump_guard; /* a constant table's base register, checked at the jump (-1: none) */
    /* The arrays from here on are written before they are read (up to
     * their counts above): builder_init() does not clear them, which for
     * every fragment cost 8 KB of stores, a quarter of build_fragment. */
    struct insn_mark map[MAX_TRACE_INSNS];
    uint8_t kinds[MAX_TRACE_INSNS];              /* enum code_kind of each, for --perf-map */
    uint64_t insn_pcs[MAX_TRACE_INSNS];          /* traces: the guest pc of each */
    struct guest_range ranges[TRACE_MAX_BLOCKS]; /* traces: the guest code covered */
    struct trace_guard guards[TRACE_MAX_BLOCKS];
    struct exit_draft exits[MAX_EXITS];
    int inline_exit_of[MAX_EXITS]; /* index of exits[i]'s inline exit, or -1 */
    /* `mov $record, %rdx` immediates, filled in with &frag->exits[index] */
    uint8_t *record_imm[MAX_RECORD_REFS];
    int record_index[MAX_RECORD_REFS];
    /* 64-bit constants placed after the code, each read by one rip-relative
     * instruction whose rel32 is patched when they are laid out */
    uint8_t *literal_rel32[MAX_LITERALS];
    uint64_t literal[MAX_LITERALS];
};

/* A builder for `mode` emitting at p, cold code below `cold`. */
static inline void builder_init(struct builder *b, struct guest_context *ctx, enum build_mode mode,
                                uint8_t *p, uint8_t *cold)
{
    memset(b, 0, offsetof(struct builder, map));
    b->ctx = ctx;
    b->mode = mode;
    b->site_exit = -1;
    b->p = p;
    b->cold = cold;
}

static inline int new_exit(struct builder *b, enum exit_kind kind, uint64_t target,
                           uint8_t *branch_rel32)
{
    int i = b->n_exits++;
    b->exits[i] = (struct exit_draft){.kind = kind, .target = target, .branch_rel32 = branch_rel32};
    b->inline_exit_of[i] = -1;
    return i;
}

/* Starts a piece of cold code: what is emitted until cold_end() goes
 * below the cold code so far. Only rel8 jumps within the piece and
 * record immediates may refer into it (it is moved once complete). */
static inline void cold_begin(struct builder *b)
{
    b->hot_p = b->p;
    b->cold_piece = b->p = b->cold - MAX_COLD_PIECE;
    b->cold_piece_refs = b->n_record_refs;
}

/* Ends the piece, moved up to meet the cold code before it; returns its
 * start and goes back to the hot cursor. */
uint8_t *cold_end(struct builder *b);

/* mov $<address of exit `index`>, %reg (rcx or rdx) */
static inline void emit_record_in(struct builder *b, int index, int reg)
{
    emit_movabs(&b->p, reg, 0);
    b->record_imm[b->n_record_refs] = b->p - 8;
    b->record_index[b->n_record_refs++] = index;
}

static inline void emit_record(struct builder *b, int index)
{
    emit_record_in(b, index, GPR_RDX);
}

/* An exit's code at `at` for its record (0 for none): from the
 * fragment's entry, or with STUB_IN_COLD from its cold code's start. */
static inline uint16_t exit_offset(const struct builder *b, const void *at)
{
    if (!at)
        return 0;
    uint64_t off = (uint64_t)at - (uint64_t)b->start, cold = (uint64_t)at - (uint64_t)b->cold;
    if (off && off < STUB_IN_COLD && (uint8_t *)at < b->cold)
        return (uint16_t)off;
    if ((uint8_t *)at >= b->cold && cold < STUB_IN_COLD - 1) /* 0xffff is STUB_LATE */
        return (uint16_t)(cold | STUB_IN_COLD);
    dbo_fatal("exit code at %p is out of reach of its fragment's entry %p", at, (void *)b->start);
}

/* Makes the builder's exits the fragment's (allocated by the caller, its
 * guest_pc set) and gives the code that hands them to the dispatcher
 * their addresses. */
static inline void place_exits(struct builder *b, struct fragment *frag)
{
    struct exit_record *exits = fragment_exits(frag);
    frag->cold_off = (uint32_t)(b->cold - b->start);
    for (int i = 0; i < b->n_exits; i++) {
        const struct exit_draft *d = &b->exits[i];
        exits[i] = (struct exit_record){
            .branch_off = exit_offset(b, d->branch_rel32),
            .stub_off = exit_offset(b, d->stub),
            .kind = d->kind,
            .inline_exit = (int8_t)b->inline_exit_of[i],
            .slot = (uint8_t)(i + 1),
        };
        if (d->target)
            exit_set_target(&exits[i], d->target);
    }
    for (int i = 0; i < b->n_record_refs; i++) {
        uint64_t record = (uint64_t)&exits[b->record_index[i]];
        memcpy(b->record_imm[i], &record, 8);
    }
    frag->n_exits = b->n_exits;
    bool stubs = false;
    for (int i = 0; i < b->n_exits; i++)
        stubs |= b->exits[i].id_stub || b->exits[i].linked_at_birth; /* ids: link.c */
    if (stubs) {
        uint32_t serial = cache_serial_new(frag);
        for (int i = 0; i < b->n_exits; i++) {
            uint32_t id = serial << 8 | (uint32_t)i;
            if (b->exits[i].id_stub)
                memcpy(b->exits[i].stub + STUB_ID_AT, &id, 4);
        }
    }
}

/* indirect.c */
void emit_exit_stub(struct builder *b, int exit);
void emit_push_u64(struct builder *b, uint64_t v);
void emit_literals(struct builder *b);
void emit_indirect_branch(struct builder *b, int exit); /* target in %rdx */
void emit_return(struct builder *b, int exit, uint16_t pop_extra);
void emit_call_push(struct builder *b, uint64_t guest_return);
/* With --stats, adds one to the counter at %gs:slot (rcx must be free). */
void emit_count(uint8_t **p, uint32_t slot);

/* quick_decode.c: the length, ModRM and displacement of an instruction
 * the translator copies as it is, if it is one of the common ones this
 * knows (else false: ask Zydis). Fills only what a copy reads: length,
 * attributes, raw.modrm, raw.disp; mnemonic and category are INVALID,
 * ops[0..2] UNUSED. A direct branch, call or return without prefixes:
 * also mnemonic, meta.category and branch_type, opcode, and ops[0], its
 * immediate (relative, or ret's count), as Zydis would have them. */
bool quick_decode(const uint8_t *bytes, size_t avail, ZydisDecodedInstruction *insn,
                  ZydisDecodedOperand *ops);
/* What the quick decoder finds of an instruction copied as it is. */
struct quick_copy {
    uint8_t length;
    uint8_t modrm_offset; /* 0: none */
    uint8_t modrm;
    uint8_t sib_offset;  /* 0: none */
    uint8_t disp_offset; /* 0: none */
    uint8_t disp_size;   /* in bytes: 0, 1 or 4 */
    int32_t disp;
};
/* The same for an instruction copied as it is, and only for one: false for
 * the branches, calls and returns quick_decode() answers too. The
 * translator's fast path for most instructions (translate.c). */
bool quick_copy(const uint8_t *bytes, size_t avail, struct quick_copy *c);

/* syscall_site.c */
/* The number a `mov $imm32, %eax` (b8) or `mov $imm32, %rax` (48 c7 c0)
 * puts in rax, the way system call numbers are set; else -1. (In line:
 * the translator asks it of every instruction.) */
static inline int64_t mov_imm_to_eax(const uint8_t *bytes, int length)
{
    int32_t imm;
    if (length == 5 && bytes[0] == 0xb8) {
        memcpy(&imm, bytes + 1, 4);
        return (uint32_t)imm;
    }
    if (length == 7 && bytes[0] == 0x48 && bytes[1] == 0xc7 && bytes[2] == 0xc0) {
        memcpy(&imm, bytes + 3, 4);
        return imm;
    }
    return -1;
}
/* A syscall through the gate's fast path (`known`: the number was seen). */
void emit_fast_syscall(struct builder *b, uint64_t next, bool known);

/* translate.c's decoder (64-bit mode), for code build_fragment() calls */
extern ZydisDecoder fragment_decoder;

/* rewrite.c: instructions that cannot be copied as they are */
/* Exits with one line naming the instruction at pc, its bytes and why. */
_Noreturn void untranslatable(uint64_t pc, const uint8_t *bytes, size_t len, const char *why);
/* mov <an indirect branch's r/m operand>, %rdx (rip-relative rebased) */
void emit_load_operand_rdx(uint8_t **p, const ZydisDecodedInstruction *insn, const uint8_t *bytes,
                           uint64_t guest_next);
/* The copy of an instruction whose rip-relative displacement (if
 * rip_relative) is at disp_offset: rebased to its target from the cache. */
static inline void emit_rebased_copy(uint8_t **p, const uint8_t *bytes, size_t length,
                                     bool rip_relative, int32_t disp, size_t disp_offset,
                                     uint64_t pc)
{
    uint8_t *start = *p;
    emit_insn_bytes(p, bytes, length);
    if (rip_relative) {
        uint64_t target = pc + length + disp;
        int64_t d = (int64_t)(target - (uint64_t)*p);
        if (d != (int32_t)d)
            dbo_fatal("rip-relative target 0x%" PRIx64 " of 0x%" PRIx64
                      " out of reach of the cache at %p",
                      target, pc, (void *)start);
        int32_t d32 = (int32_t)d;
        memcpy(start + disp_offset, &d32, 4);
    }
}

/* The same for what quick_copy() found. */
static inline void emit_plain_copy(uint8_t **p, const uint8_t *bytes, const struct quick_copy *c,
                                   uint64_t pc)
{
    bool rip_relative = c->modrm_offset && (c->modrm & 0xc7) == 0x05;
    emit_rebased_copy(p, bytes, c->length, rip_relative, c->disp, c->disp_offset, pc);
}
/* A copy of an ordinary instruction, a rip-relative displacement rebased. */
void emit_copy(uint8_t **p, const ZydisDecodedInstruction *insn, const ZydisDecodedOperand *ops,
               const uint8_t *bytes, uint64_t pc);
/* Where a direct branch goes (quick: as quick_decode left it). */
uint64_t branch_target(const ZydisDecodedInstruction *insn, const ZydisDecodedOperand *op,
                       uint64_t pc, bool quick);
bool uses_gs(const ZydisDecodedInstruction *insn);
/* Whether the translation of insn reads its decoded operands. */
bool needs_operands(const ZydisDecodedInstruction *insn, bool self_check);
/* 0-15 for a general register (of any width: the one enclosing it), -1
 * for any other register */
int gpr_number(ZydisRegister reg);
/* A %gs-relative memory operand through a scratch register (false: not
 * a form this can re-encode). */
bool emit_gs_access(uint8_t **p, const ZydisDecodedInstruction *insn,
                    const ZydisDecodedOperand *ops, uint64_t pc);

/* table_jump.c: before a copied instruction at pc (bytes, as the quick
 * decoder saw it) that may_load_jump_table() accepts: if it loads the
 * target of a jump a few instructions on from a table, save the index's low byte for the jump's
 * site; then at that jump, the site's code (false: no site left, emit the usual lookup). */
bool table_jump_lookahead(struct builder *b, const uint8_t *bytes, size_t avail,
                          const ZydisDecodedInstruction *quick, uint64_t pc);
/* The cheap test the translator makes of every copied instruction first:
 * a load with a scaled index (mov r64, [.. + r*8] or movslq r64,
 * [.. + r*4])? */
static inline bool loads_like_jump_table(const uint8_t *bytes, uint8_t modrm_offset)
{
    uint8_t modrm = bytes[modrm_offset];
    if (modrm_offset < 2 || modrm >> 6 == 3 || (modrm & 7) != 4)
        return false;
    uint8_t rex = bytes[modrm_offset - 2], op = bytes[modrm_offset - 1];
    uint8_t scale = bytes[modrm_offset + 1] >> 6;
    return (rex & 0xf8) == 0x48 && ((op == 0x8b && scale == 3) || (op == 0x63 && scale == 2));
}
static inline bool may_load_jump_table(const uint8_t *bytes, const ZydisDecodedInstruction *insn)
{
    return (insn->attributes & ZYDIS_ATTRIB_HAS_MODRM) &&
           loads_like_jump_table(bytes, insn->raw.modrm.offset);
}
static inline bool may_load_table(const uint8_t *bytes, const struct quick_copy *c)
{
    return c->modrm_offset && loads_like_jump_table(bytes, c->modrm_offset);
}
bool emit_table_jump(struct builder *b);
/* A call or jump through memory (op) that reads a constant table with an
 * index under 256: through its site's slots, no tag (false: not such a
 * jump, emit the usual lookup). */
bool emit_table_call(struct builder *b, const ZydisDecodedInstruction *insn,
                     const ZydisDecodedOperand *op, const uint8_t *bytes, uint64_t pc,
                     uint64_t next);
/* The fragment's site exit for the dispatcher, once it has its records. */
void table_jump_placed(const struct builder *b, struct fragment *frag);

/* perf_map.c: the lines of a fragment just built (b its builder). */
void perf_map_fragment(const struct builder *b, const struct fragment *frag);
/* An inner entry's stub, `size` bytes. */
void perf_map_inner_entry(const struct fragment *entry, uint64_t size);

/* trace.c */
/* A trace's guard that the indirect target in %rdx (or, for a return, the
 * one on the stack, popped on a hit) is `expected`; guest rcx/rdx spilled,
 * restored on the hit path, which falls through. */
void emit_trace_guard(struct builder *b, uint64_t expected, int exit, bool is_return,
                      uint16_t pop_extra);
/* The guards' miss paths: the usual lookups, after the trace's body. */
void emit_trace_guard_misses(struct builder *b);

#endif
