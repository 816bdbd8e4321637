/* Building fragments: guest code is decoded with Zydis and copied byte for
 * byte into the cache; only control transfers and rip-relative operands are
 * rewritten (rewrite.c). A fragment ends at the first control transfer or
 * syscall.
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
#include "translator/builder.h"
#include "translator/emit.h"

ZydisDecoder fragment_decoder; /* set up by the first translate() */
static bool decoder_ready;

bool translator_guest_pc(uint64_t cache_pc, uint64_t *guest_pc, bool *spilled, bool *at_boundary)
{
    struct fragment *f = cache_fragment_at(cache_pc);
    if (!f || !f->n_insns)
        return false;
    uint32_t off = (uint32_t)(cache_pc - (uint64_t)f->cache_pc);
    uint32_t at = f->first_insn_off, guest_off = 0, i = 0;
    if (off < at)
        return false;
    /* Walk to the instruction whose code holds off (the last one's runs
     * on to the fragment's end). */
    const uint8_t *map = fragment_pc_map(f);
    struct pc_map_step step = pc_map_read(&map);
    while (i + 1 < f->n_insns && at + step.cache_len <= off) {
        at += step.cache_len;
        guest_off += step.guest_len;
        step = pc_map_read(&map);
        i++;
    }
    *guest_pc = f->is_trace ? fragment_insn_pcs(f)[i] : f->guest_pc + guest_off;
    *spilled = step.spilled;
    *at_boundary = off == at;
    return true;
}

/* The builder's marks as a pc map (lengths, not offsets) in `map`;
 * returns its size in bytes. The last instruction's code runs on to the
 * fragment's end: its step is 0, 0. */
static size_t encode_pc_map(const struct builder *b, uint8_t *map)
{
    size_t n = 0;
    int last = b->n_insns - 1;
    struct insn_mark at = last >= 0 ? b->map[0] : (struct insn_mark){0};
    for (int i = 0; i < last; i++) {
        struct insn_mark next = b->map[i + 1];
        uint32_t cache_len = (uint32_t)(next.cache_off - at.cache_off);
        uint32_t guest_len = (uint32_t)(next.guest_off - at.guest_off); /* 0 in traces */
        if (cache_len > PC_MAP_MAX_CACHE_LEN || guest_len > 15)
            dbo_fatal("pc map: an instruction of %u bytes translated to %u", guest_len, cache_len);
        n += pc_map_write(map + n, (struct pc_map_step){.cache_len = (uint16_t)cache_len,
                                                        .guest_len = (uint8_t)guest_len,
                                                        .spilled = at.spilled});
        at = next;
    }
    if (last >= 0)
        n += pc_map_write(map + n, (struct pc_map_step){.spilled = b->map[last].spilled});
    return n;
}

/* The entry check of a fragment from a volatile page: compare the guest
 * bytes with the ones translated, 8 at a time, flag-free (lea/jrcxz); on a
 * difference, exit so the dispatcher retranslates. */
static void emit_self_check(struct builder *b, uint64_t guest_pc, uint64_t guest_end, uint8_t *body,
                            int stale)
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
            emit_movabs(&b->p, GPR_RDX, ~want);
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
    b->exits[stale].stub = b->p;
    emit_record(b, stale);
    emit_jmp_gs(&b->p, CTX_EXIT_ENTRY);
}

/* The recorded path a trace follows (BUILD_TRACE only). */
struct trace_path {
    const struct guest_range *blocks;
    int n_blocks;
    uint64_t end_pc; /* where the last block goes */
    int block;       /* the block being translated */
};

static struct fragment *build_fragment(struct guest_context *ctx, uint64_t guest_pc,
                                       struct cache_chunk *chunk, bool self_check,
                                       enum build_mode mode, struct trace_path *path);

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

static struct fragment *translate(struct guest_context *ctx, uint64_t guest_pc,
                                  enum build_mode mode, struct trace_path *path);

/* The offset from f's cache_pc of the code of its instruction at
 * guest_pc, where the guest state is all in registers (nothing spilled);
 * false if no instruction of f starts there so. */
static bool clean_insn_start(const struct fragment *f, uint64_t guest_pc, uint32_t *cache_off)
{
    const uint8_t *map = fragment_pc_map(f);
    uint32_t at = f->first_insn_off;
    uint64_t pc = f->guest_pc;
    for (uint32_t i = 0; i < f->n_insns && pc <= guest_pc; i++) {
        struct pc_map_step step = pc_map_read(&map);
        if (pc == guest_pc) {
            *cache_off = at;
            return !step.spilled;
        }
        at += step.cache_len;
        pc += step.guest_len;
    }
    return false;
}

/* An inner entry at guest_pc (cache.h), where a fragment built before
 * runs through it: 16 bytes of stub and a record, where a fragment of its
 * own would translate the rest of that one's code again. NULL if there is
 * none to enter (or no room for the stub: translate() sees to that). */
static struct fragment *enter_inside(uint64_t guest_pc)
{
    if (!dbo_opts.inner_entries || dbo_opts.trace_threshold || cache_page_volatile(guest_pc))
        return NULL; /* (traces replace fragments: entries into them are not kept track of) */
    struct fragment *into = cache_fragment_through(guest_pc);
    uint32_t off;
    if (!into || !clean_insn_start(into, guest_pc, &off))
        return NULL;
    struct cache_chunk *chunk = cache_chunk_near(guest_pc, INDIRECT_ENTRY_SIZE + 5);
    if (!chunk)
        return NULL;
    /* The indirect entry: mov %gs:spill_rcx, %rcx; jmp <the code> */
    uint8_t *stub = cache_chunk_cursor(chunk), *p = stub;
    uint8_t *code = into->cache_pc + off;
    int64_t reach = code - (stub + INDIRECT_ENTRY_SIZE + 5);
    if (reach != (int32_t)reach)
        return NULL;
    emit_load_gs(&p, GPR_RCX, CTX_SPILL_RCX);
    patch_rel32(emit_jmp_rel32(&p), code);
    cache_chunk_commit(chunk, p, 0);
    struct fragment *entry =
        cache_record_alloc(chunk, sizeof(struct fragment) + sizeof(struct inner_entry_tail));
    entry->guest_pc = guest_pc;
    entry->cache_pc = code;
    entry->guest_len = (uint16_t)(fragment_guest_end(into) - guest_pc);
    entry->is_inner_entry = true;
    entry->ends_with = into->ends_with;
    *inner_entry_tail(entry) = (struct inner_entry_tail){.indirect_entry = stub, .into = into};
    cache_insert_inner_entry(entry);
    dbo_stats.inner_entries++;
    if (dbo_opts.perf_map)
        perf_map_inner_entry(entry, (uint64_t)(p - stub));
    if (dbo_opts.verbose)
        dbo_log("inner entry 0x%" PRIx64 " -> %p (fragment 0x%" PRIx64 " + %u bytes)", guest_pc,
                (void *)code, into->guest_pc, off);
    return entry;
}

struct fragment *translate_fragment(struct guest_context *ctx, uint64_t guest_pc, bool inner_ok)
{
    struct fragment *entry = inner_ok ? enter_inside(guest_pc) : NULL;
    return entry ? entry : translate(ctx, guest_pc, BUILD_FRAGMENT, NULL);
}

struct fragment *translate_single(struct guest_context *ctx, uint64_t guest_pc)
{
    return translate(ctx, guest_pc, BUILD_SINGLE, NULL);
}

struct fragment *translate_record_block(struct guest_context *ctx, uint64_t guest_pc)
{
    return translate(ctx, guest_pc, BUILD_RECORD, NULL);
}

struct fragment *translate_trace(struct guest_context *ctx, const struct guest_range *blocks,
                                 int n_blocks, uint64_t end_pc)
{
    for (int i = 0; i < n_blocks; i++)
        if (touches_volatile_page(blocks[i].start, blocks[i].end))
            return NULL; /* code that keeps changing checks itself: no traces */
    struct trace_path path = {.blocks = blocks, .n_blocks = n_blocks, .end_pc = end_pc};
    return translate(ctx, blocks[0].start, BUILD_TRACE, &path);
}

/* The fragments the last build_fragment() linked its exits to as it made
 * them, by exit, for link_at_birth() to put them on those fragments'
 * incoming lists without looking them up again (translator lock held
 * throughout). Set for the exits there were when it placed the stubs
 * (NULL: given a stub); read only for an exit with a branch and no stub. */
static struct fragment *born_links[MAX_EXITS];

/* Links the exits build_fragment() made without a stub, their branches
 * already at their targets: room for their stubs is kept in the chunk, in
 * case they are unlinked. */
static void link_at_birth(struct fragment *frag, struct cache_chunk *chunk)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < frag->n_exits; i++) {
        const struct exit_record *e = &fragment_exits(frag)[i];
        n += e->branch_off && !e->stub_off && e->kind != EXIT_INDIRECT;
    }
    if (!n)
        return;
    cache_chunk_reserve_stubs(chunk, n);
    for (uint32_t i = 0; i < frag->n_exits; i++) {
        struct exit_record *e = &fragment_exits(frag)[i];
        if (e->branch_off && !e->stub_off && e->kind != EXIT_INDIRECT) {
            cache_link_at_birth(e, born_links[i]);
            dbo_stats.direct_links++;
        }
    }
}

static struct fragment *translate(struct guest_context *ctx, uint64_t guest_pc,
                                  enum build_mode mode, struct trace_path *path)
{
    uint64_t t0 = dbo_opts.stats ? dbo_now_ns() : 0; /* clock_gettime is not free */
    if (!decoder_ready) {
        ZydisDecoderInit(&fragment_decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
        decoder_ready = true;
    }
    if (!guest_vm_executable(guest_pc))
        return NULL;
    size_t bytes = (mode == BUILD_TRACE ? MAX_TRACE_BYTES : MAX_FRAGMENT_BYTES) + MAX_COLD_PIECE;
    struct cache_chunk *chunk = cache_chunk_near(guest_pc, bytes);
    if (!chunk) { /* full: start over */
        translator_flush(ctx);
        chunk = cache_chunk_near(guest_pc, bytes);
    }
    if (!chunk)
        dbo_fatal("no code cache memory can be placed near guest code at 0x%" PRIx64, guest_pc);
    bool self_check = mode != BUILD_TRACE && cache_page_volatile(guest_pc);
    struct fragment *frag = build_fragment(ctx, guest_pc, chunk, self_check, mode, path);
    if (!frag->self_check && mode != BUILD_TRACE &&
        touches_volatile_page(frag->guest_pc, fragment_guest_end(frag))) {
        /* It ran onto a volatile page: build it again, self-checking. */
        cache_free_fragment(frag);
        frag = build_fragment(ctx, guest_pc, chunk, true, mode, path);
    }
    cache_chunk_commit(chunk, frag->cache_pc + frag->cache_size, frag->cold_bytes);
    switch (mode) {
    case BUILD_FRAGMENT:
        cache_insert(frag);
        cache_protect_code(frag);
        dbo_stats.fragments_built++;
        link_at_birth(frag, chunk);
        break;
    case BUILD_SINGLE:
        cache_insert_transient(frag);
        dbo_stats.fragments_built++;
        break;
    case BUILD_RECORD:
        cache_insert_transient(frag);
        dbo_stats.trace_blocks_recorded++;
        break;
    case BUILD_TRACE: /* installed by the caller */ dbo_stats.traces_built++; break;
    }
    dbo_stats.cache_bytes += frag->cache_size + frag->cold_bytes;
    if (dbo_opts.stats)
        dbo_stats.translate_ns += dbo_now_ns() - t0;
    if (dbo_opts.verbose)
        dbo_log("%s 0x%" PRIx64 "-0x%" PRIx64 " -> %p (%u bytes%s)",
                mode == BUILD_TRACE    ? "trace"
                : mode == BUILD_RECORD ? "recording block"
                                       : "fragment",
                frag->guest_pc, fragment_guest_end(frag), (void *)frag->cache_pc, frag->cache_size,
                frag->self_check ? ", self-checking" : "");
    return frag;
}

/* Where the trace goes after its current block. */
static uint64_t trace_successor(const struct trace_path *t)
{
    return t->block + 1 < t->n_blocks ? t->blocks[t->block + 1].start : t->end_pc;
}

/* The trace goes on at its next block, at `to`: false if there is none,
 * or if it is too far from the head: the cache near the head must reach
 * the block's rip-relative operands too. */
static bool trace_advance(struct builder *b, struct trace_path *t, uint64_t to)
{
    uint64_t head = t->blocks[0].start;
    if (++t->block >= t->n_blocks || (to > head ? to - head : head - to) > TRACE_REACH)
        return false;
    struct guest_range *last = &b->ranges[b->n_ranges - 1];
    if (last->end != to) /* a block right after the last one extends it */
        b->ranges[b->n_ranges++] = (struct guest_range){to, to};
    return true;
}

/* Where the code of the instruction at pc starts (about to be emitted),
 * by its offset from the fragment's first (0 in a trace: from), for the
 * pc map; its kind CODE_GUEST until said otherwise. REFUSE() undoes it. */
static inline void mark_insn(struct builder *b, uint64_t pc, uint64_t from)
{
    b->kinds[b->n_insns] = CODE_GUEST;
    b->map[b->n_insns++] = (struct insn_mark){.cache_off = (uint16_t)(b->p - b->start),
                                              .guest_off = (uint16_t)(pc - from)};
    dbo_stats.guest_instructions++;
}

/* An instruction dbo cannot translate: past the fragment's first, it
 * ends the fragment there, unemitted, and is reported only if it runs (a
 * fragment goes on past branches into code that may not). */
#define REFUSE(...)                                                                                \
    do {                                                                                           \
        if (n > 0 && !t) {                                                                         \
            b.n_insns--;                                                                           \
            b.p = b.start + b.map[b.n_insns].cache_off;                                            \
            dbo_stats.guest_instructions--;                                                        \
            goto refused;                                                                          \
        }                                                                                          \
        untranslatable(pc, bytes, insn.length, __VA_ARGS__);                                       \
    } while (0)

static struct fragment *build_fragment(struct guest_context *ctx, uint64_t guest_pc,
                                       struct cache_chunk *chunk, bool self_check,
                                       enum build_mode mode, struct trace_path *t)
{
    struct builder b;
    builder_init(&b, ctx, mode, cache_chunk_cursor(chunk), cache_chunk_cold(chunk));
    int max_insns = mode == BUILD_TRACE    ? MAX_TRACE_INSNS
                    : mode == BUILD_SINGLE ? 1
                                           : MAX_FRAGMENT_INSNS;
    if (t)
        b.ranges[b.n_ranges++] = (struct guest_range){guest_pc, guest_pc};
    /* The indirect entry, just before the fragment: indirect branches jump
     * here through %rcx, which this restores. */
    emit_load_gs(&b.p, GPR_RCX, CTX_SPILL_RCX);
    b.start = b.p;
    uint8_t *check_jump = NULL;
    if (self_check) {
        emit_u8(&b.p, 0xe9); /* to the check block, emitted last */
        check_jump = b.p;
        emit_u32(&b.p, 0);
    }
    uint8_t *body = b.p;

    uint64_t pc = guest_pc;
    bool ended = false;
    int branches_inside = 0;
    uint64_t known_start = pc, known_end = pc;
    int64_t known_rax = -1; /* set by a `mov $imm, %eax` just before */
    /* Plain copies take the fast path (not in a trace, which keeps each
     * instruction's pc, nor in self-checking code, which ends at stores). */
    bool plain_ok = !t && !self_check;
    for (int n = 0; n < max_insns && !ended; n++) {
        if (t && (b.p - b.start > TRACE_BODY_BYTES || pc >= t->blocks[t->block].end)) {
            /* A recorded block that ended without a branch (it was full)
             * goes on at the next one; else the trace ends here. */
            if (b.p - b.start > TRACE_BODY_BYTES || pc != trace_successor(t) ||
                !trace_advance(&b, t, pc))
                break;
        }
        /* Executable bytes from pc on, looked up again only near the end
         * of the extent known so far (the lookup walks the region map) */
        if (pc < known_start || pc + 16 > known_end) { /* a trace jumps around */
            known_start = pc;
            known_end = pc + guest_vm_exec_extent(pc);
        }
        uint64_t avail = known_end - pc;
        if (avail == 0)
            break; /* ran into non-executable memory: exit there, fault there */
        const uint8_t *bytes = (const uint8_t *)pc;
        struct quick_copy copy;
        if (plain_ok && quick_copy(bytes, avail, &copy) && !may_load_table(bytes, &copy)) {
            /* Most instructions: copied as they are, nothing else to do. */
            mark_insn(&b, pc, guest_pc);
            known_rax = mov_imm_to_eax(bytes, copy.length);
            emit_plain_copy(&b.p, bytes, &copy, pc);
            pc += copy.length;
            continue;
        }
        ZydisDecodedInstruction insn;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        ZydisDecoderContext dctx;
        /* (quick_decode fills in the operands the cases below read) */
        bool quick = !self_check && quick_decode(bytes, avail, &insn, ops);
        if (!quick && ZYAN_FAILED(ZydisDecoderDecodeInstruction(&fragment_decoder, &dctx, bytes,
                                                                avail < 15 ? avail : 15, &insn))) {
            if (n > 0)
                break; /* let the next fragment report it, at its own address */
            untranslatable(pc, bytes, avail < 15 ? avail : 15, "not a valid x86-64 instruction");
        }
        if (!quick) {
            /* Operands cost as much again to decode: only where the rewrite
             * needs them. Most instructions are copied knowing their length. */
            /* the cases below look at these (clearing all ten is 800 bytes) */
            ops[0].type = ops[1].type = ops[2].type = ZYDIS_OPERAND_TYPE_UNUSED;
            if (needs_operands(&insn, self_check))
                ZydisDecoderDecodeOperands(&fragment_decoder, &dctx, &insn, ops,
                                           insn.operand_count);
        }
        uint64_t next = pc + insn.length;
        int64_t rax_before = known_rax;
        known_rax = mov_imm_to_eax(bytes, insn.length);
        if (t) {
            b.insn_pcs[b.n_insns] = pc;
            b.ranges[b.n_ranges - 1].end = next;
        }
        /* (.spilled: set below for a return or an indirect branch; the
         * kind likewise) */
        mark_insn(&b, pc, t ? pc : guest_pc);
        /* (the quick decoder takes no %gs prefix) */
        if (!quick && uses_gs(&insn) && insn.meta.category != ZYDIS_CATEGORY_COND_BR &&
            insn.meta.category != ZYDIS_CATEGORY_UNCOND_BR &&
            insn.meta.category != ZYDIS_CATEGORY_CALL && insn.meta.category != ZYDIS_CATEGORY_RET) {
            if (!emit_gs_access(&b.p, &insn, ops, pc))
                REFUSE("this %gs-relative instruction is not emulated");
            pc = next;
            continue;
        }

        switch (insn.mnemonic) {
        case ZYDIS_MNEMONIC_JMP:
        case ZYDIS_MNEMONIC_CALL:
            if (insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR)
                REFUSE("far control transfer");
            bool indirect = ops[0].type != ZYDIS_OPERAND_TYPE_IMMEDIATE;
            b.map[b.n_insns - 1].spilled = indirect; /* guest rcx/rdx in their slots */
            if (pc == b.table_jump_at && insn.mnemonic == ZYDIS_MNEMONIC_JMP &&
                ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER &&
                gpr_number(ops[0].reg.value) == b.table_jump_target &&
                emit_table_jump(&b)) { /* its target was loaded from a table */
                b.kinds[b.n_insns - 1] = CODE_INDIRECT;
                b.ends_with = ENDS_INDIRECT;
                ended = true;
                break;
            }
            if (indirect && !t && ops[0].type == ZYDIS_OPERAND_TYPE_MEMORY &&
                emit_table_call(&b, &insn, &ops[0], bytes, pc, next)) {
                b.kinds[b.n_insns - 1] = CODE_INDIRECT;
                b.ends_with = insn.mnemonic == ZYDIS_MNEMONIC_CALL ? ENDS_CALL : ENDS_INDIRECT;
                ended = true;
                break;
            }
            b.kinds[b.n_insns - 1] = indirect                               ? CODE_INDIRECT
                                     : insn.mnemonic == ZYDIS_MNEMONIC_CALL ? CODE_CALL
                                                                            : CODE_BRANCH;
            if (indirect) {
                emit_store_gs(&b.p, GPR_RCX, CTX_SPILL_RCX);
                emit_store_gs(&b.p, GPR_RDX, CTX_SPILL_RDX);
                emit_load_operand_rdx(&b.p, &insn, bytes, next);
            }
            if (insn.mnemonic == ZYDIS_MNEMONIC_CALL)
                emit_call_push(&b, next);
            b.ends_with = insn.mnemonic == ZYDIS_MNEMONIC_CALL ? ENDS_CALL
                          : indirect                           ? ENDS_INDIRECT
                                                               : ENDS_OTHER;
            if (t && insn.mnemonic == ZYDIS_MNEMONIC_CALL)
                b.call_depth++;
            if (t && indirect && !dbo_opts.trace_indirect) {
                emit_indirect_branch(&b, new_exit(&b, EXIT_INDIRECT, 0, NULL));
                ended = true;
                break;
            }
            if (t) {
                /* Along the trace: guard an indirect target, drop a jump. */
                uint64_t to = trace_successor(t), target = to;
                if (indirect)
                    emit_trace_guard(&b, to, new_exit(&b, EXIT_INDIRECT, 0, NULL), false, 0);
                else
                    target = branch_target(&insn, &ops[0], pc, quick);
                if (target != to)
                    new_exit(&b, insn.mnemonic == ZYDIS_MNEMONIC_CALL ? EXIT_CALL : EXIT_DIRECT,
                             target, emit_jmp_rel32(&b.p));
                else if (trace_advance(&b, t, to)) {
                    next = to;
                    break;
                } else
                    new_exit(&b, EXIT_DIRECT, to, emit_jmp_rel32(&b.p));
                ended = true;
                break;
            }
            if (indirect) {
                emit_indirect_branch(&b, new_exit(&b, EXIT_INDIRECT, 0, NULL));
            } else {
                uint64_t target;
                target = branch_target(&insn, &ops[0], pc, quick);
                new_exit(&b, insn.mnemonic == ZYDIS_MNEMONIC_CALL ? EXIT_CALL : EXIT_DIRECT, target,
                         emit_jmp_rel32(&b.p));
            }
            ended = true;
            break;
        case ZYDIS_MNEMONIC_RET: {
            if (insn.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR)
                REFUSE("far return");
            uint16_t pop_extra =
                ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE ? (uint16_t)ops[0].imm.value.u : 0;
            b.kinds[b.n_insns - 1] = CODE_RETURN;
            b.map[b.n_insns - 1].spilled = true;
            emit_store_gs(&b.p, GPR_RCX, CTX_SPILL_RCX);
            emit_store_gs(&b.p, GPR_RDX, CTX_SPILL_RDX);
            b.ends_with = ENDS_RETURN;
            /* A trace guards a return to its own call (the callee was
             * followed): other returns go to wherever their caller was. */
            if (t && b.call_depth > 0) {
                b.call_depth--;
                uint64_t to = trace_successor(t);
                emit_trace_guard(&b, to, new_exit(&b, EXIT_INDIRECT, 0, NULL), true, pop_extra);
                if (trace_advance(&b, t, to)) {
                    next = to;
                    break;
                }
                new_exit(&b, EXIT_DIRECT, to, emit_jmp_rel32(&b.p));
            } else {
                emit_return(&b, -1, pop_extra);
            }
            ended = true;
            break;
        }
        case ZYDIS_MNEMONIC_SYSCALL: {
            b.kinds[b.n_insns - 1] = CODE_SYSCALL;
            /* A recording block leaves through EXIT_SYSCALL: a trace ends
             * there. A number known not to pass goes to the C gate. */
            bool known_fast = rax_before >= 0 && syscall_fast_allowed(rax_before);
            b.whole_only |= rax_before >= 0; /* the number is the mov's */
            if (mode != BUILD_RECORD &&
                (rax_before < 0 || known_fast || syscall_fast_path_arg(rax_before))) {
                emit_fast_syscall(&b, next, known_fast); /* else the fast path checks */
            } else {
                int e = new_exit(&b, EXIT_SYSCALL, next, NULL);
                b.exits[e].stub = b.p;
                emit_exit_stub(&b, e);
            }
            ended = true;
            break;
        }
        case ZYDIS_MNEMONIC_CPUID: {
            /* answered from memory by the dispatcher (cpuid.c); its stub
             * is in line, and an exit's code cannot be at offset 0 (which
             * means none): a fragment that starts with cpuid starts with
             * a nop */
            if (b.p == b.start)
                emit_u8(&b.p, 0x90);
            int e = new_exit(&b, EXIT_CPUID, next, NULL);
            b.exits[e].stub = b.p;
            emit_exit_stub(&b, e);
            ended = true;
            break;
        }
        case ZYDIS_MNEMONIC_JRCXZ:
        case ZYDIS_MNEMONIC_JECXZ:
        case ZYDIS_MNEMONIC_LOOP:
        case ZYDIS_MNEMONIC_LOOPE:
        case ZYDIS_MNEMONIC_LOOPNE: {
            /* Only rel8 forms exist: branch over a fall-through jump. */
            b.kinds[b.n_insns - 1] = CODE_BRANCH;
            uint64_t target;
            target = branch_target(&insn, &ops[0], pc, quick);
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
        case ZYDIS_MNEMONIC_XBEGIN: REFUSE("instruction not supported by dbo");
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
                REFUSE("32-bit system calls (int $0x80) are not supported");
            emit_copy(&b.p, &insn, ops, bytes, pc);
            break;
        default:
            if (insn.meta.category == ZYDIS_CATEGORY_COND_BR) {
                b.kinds[b.n_insns - 1] = CODE_BRANCH;
                uint64_t target;
                target = branch_target(&insn, &ops[0], pc, quick);
                int cond = insn.opcode & 0x0f;
                if (t) {
                    /* The way the trace went is the fall-through: the
                     * branch is inverted if it was taken. */
                    uint64_t to = trace_successor(t);
                    bool taken = to == target && to != next;
                    if (taken || to == next) {
                        new_exit(&b, EXIT_DIRECT, taken ? next : target,
                                 emit_jcc_rel32(&b.p, taken ? cond ^ 1 : cond));
                        if (trace_advance(&b, t, to)) {
                            next = to;
                            break;
                        }
                        new_exit(&b, EXIT_DIRECT, to, emit_jmp_rel32(&b.p));
                        ended = true;
                        break;
                    }
                }
                new_exit(&b, EXIT_DIRECT, target, emit_jcc_rel32(&b.p, cond));
                /* The fall-through path continues in this fragment, up to
                 * --fragment-branches branches: straight-line code. Not
                 * into code translated already: a copy costs decoding. */
                if (branches_inside < dbo_opts.fragment_branches && mode == BUILD_FRAGMENT &&
                    !cache_lookup(next)) { /* else link to it rather than copy it */
                    branches_inside++;
                    break;
                }
                new_exit(&b, EXIT_DIRECT, next, emit_jmp_rel32(&b.p));
                ended = true;
                break;
            }
            if ((insn.attributes & ZYDIS_ATTRIB_IS_RELATIVE) &&
                !(ops[0].type == ZYDIS_OPERAND_TYPE_MEMORY ||
                  ops[1].type == ZYDIS_OPERAND_TYPE_MEMORY ||
                  ops[2].type == ZYDIS_OPERAND_TYPE_MEMORY))
                REFUSE("unhandled relative instruction");
            if (quick && !self_check && may_load_jump_table(bytes, &insn))
                table_jump_lookahead(&b, bytes, avail, &insn, pc);
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
refused:
    if (!ended)
        new_exit(&b, EXIT_DIRECT, pc, emit_jmp_rel32(&b.p));

    /* Stubs for the exits that branch, in cold code; none for a direct
     * exit to code translated already, linked as soon as the fragment is
     * made (a quarter of cc1's: 56 000 stubs and dispatcher round trips). */
    uint8_t *hot_end = b.p;
    for (int i = 0; i < b.n_exits; i++) {
        struct exit_draft *e = &b.exits[i];
        struct fragment *to = e->branch_rel32 && mode == BUILD_FRAGMENT && !self_check &&
                                      !dbo_opts.trace_threshold && e->target &&
                                      (e->kind == EXIT_DIRECT || e->kind == EXIT_CALL)
                                  ? cache_lookup(e->target)
                                  : NULL;
        int64_t reach = to ? to->cache_pc - (e->branch_rel32 + 4) : 0;
        e->linked_at_birth = to && !to->dead && reach == (int32_t)reach;
        born_links[i] = e->linked_at_birth ? to : NULL;
        if (e->linked_at_birth)
            patch_rel32(e->branch_rel32, to->cache_pc);
        else if (e->branch_rel32)
            b.cold -= STUB_SIZE;
    }
    b.p = b.cold;
    for (int i = 0; i < b.n_exits; i++) {
        struct exit_draft *e = &b.exits[i];
        if (!e->branch_rel32 || e->linked_at_birth)
            continue;
        e->stub = b.p;
        patch_rel32(e->branch_rel32, e->stub);
        emit_exit_stub(&b, i);
    }
    b.p = hot_end;
    emit_trace_guard_misses(&b);
    emit_literals(&b);
    if (self_check) {
        patch_rel32(check_jump, b.p);
        emit_self_check(&b, guest_pc, pc, body, new_exit(&b, EXIT_STALE, guest_pc, NULL));
    }

    /* One allocation holds the fragment, its exits and its pc map (see
     * cache.h); code that hands an exit to the dispatcher gets the
     * record's address now. */
    size_t code_bytes = (size_t)(b.p - b.start),
           cold_bytes = (size_t)(cache_chunk_cold(chunk) - b.cold);
    if (code_bytes > UINT16_MAX || cold_bytes > UINT16_MAX)
        dbo_fatal("fragment at %#lx: %zu bytes of code, %zu of cold code", (unsigned long)guest_pc,
                  code_bytes, cold_bytes);
    uint8_t pc_map[MAX_TRACE_INSNS * PC_MAP_MAX_STEP];
    size_t pc_map_bytes = encode_pc_map(&b, pc_map);
    struct fragment *frag =
        cache_record_alloc(chunk, fragment_alloc_size(b.n_exits, b.n_insns, pc_map_bytes, t != NULL,
                                                      t ? b.n_ranges : 0));
    frag->n_exits = b.n_exits;
    frag->n_insns = b.n_insns;
    if (t) {
        frag->is_trace = true;
        frag->n_ranges = b.n_ranges;
        uint64_t *insn_pcs = fragment_insn_pcs(frag);
        memcpy(insn_pcs, b.insn_pcs, b.n_insns * sizeof *insn_pcs);
        memcpy(insn_pcs + b.n_insns, b.ranges, b.n_ranges * sizeof *b.ranges);
    }
    frag->guest_pc = guest_pc; /* before place_exits(): targets are offsets from it */
    place_exits(&b, frag);
    table_jump_placed(&b, frag);
    memcpy(fragment_pc_map(frag), pc_map, pc_map_bytes);
    frag->first_insn_off = b.n_insns ? b.map[0].cache_off : 0;
    uint64_t guest_end = t ? b.ranges[0].end : pc;
    if (guest_end - guest_pc > UINT16_MAX)
        dbo_fatal("a fragment of %" PRIu64 " guest bytes", guest_end - guest_pc);
    frag->guest_len = (uint16_t)(guest_end - guest_pc);
    frag->cache_pc = b.start;
    frag->cache_size = (uint16_t)code_bytes;
    frag->cold_bytes = (uint16_t)cold_bytes;
    frag->self_check = self_check;
    frag->ends_with = b.ends_with;
    frag->whole_only = b.whole_only;
    if (dbo_opts.perf_map)
        perf_map_fragment(&b, frag);
    return frag;
}
#undef REFUSE
