/* Translator unit tests: fragments are built from guest code that the host
 * cannot execute, and run end to end in forked children. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cpuid.h>
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/cache.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "translator/translator.h"
#include "tests/unit/run_guest.h"
#include "translator/builder.h"

extern uint8_t guest_code_start[], guest_code_end[], guest_exit42[], guest_riprel[], guest_flags[],
    guest_fib[], guest_branches[], guest_branches_end[], guest_slot_pair[], guest_slot_triple[],
    guest_table_jump[], guest_table_thrash[], guest_fast_syscalls[], guest_return_stack[],
    guest_cpuid[], guest_inner[], guest_inner_loop[], guest_inner_jump[], guest_unreached[];

static int setup(void **state)
{
    (void)state;
    guest_vm_record((uint64_t)guest_code_start, guest_code_end - guest_code_start,
                    PROT_READ | PROT_EXEC);
    return 0;
}

static void test_fragment_shape(void **state)
{
    (void)state;
    struct guest_context *ctx = context_create(true);
    struct fragment *f = translate_fragment(ctx, (uint64_t)guest_exit42, true);
    assert_non_null(f);
    assert_int_equal(f->guest_pc, (uint64_t)guest_exit42);
    /* mov(5) + mov(5) + syscall(2): the fragment ends at the syscall */
    assert_int_equal(f->guest_len, 12);
    assert_int_equal(f->n_exits, 1);
    assert_int_equal(fragment_exits(f)[0].kind, EXIT_SYSCALL);
    assert_int_equal(exit_target(&fragment_exits(f)[0]), (uint64_t)guest_exit42 + 12);
    assert_ptr_equal(cache_lookup((uint64_t)guest_exit42), f);
    assert_true(cache_range_has_code((uint64_t)guest_exit42, 1));
    /* The copies are byte-identical: both movs are position-independent. */
    assert_memory_equal(f->cache_pc, guest_exit42, 10);
    context_release(ctx);
}

/* The pc map takes every byte of a fragment's code back to the guest
 * instruction it translates: fib's first block is cmp (3 bytes), jb (2),
 * push (1), push (1), dec (2), call (5), across a superblock branch. */
static void test_pc_map(void **state)
{
    (void)state;
    static const int lengths[] = {3, 2, 1, 1, 2, 5};
    struct guest_context *ctx = context_create(true);
    int32_t rel; /* fib: the target of guest_fib's call, after mov $15, %edi */
    memcpy(&rel, guest_fib + 6, 4);
    uint64_t fib = (uint64_t)guest_fib + 10 + rel;
    int branches = dbo_opts.fragment_branches;
    dbo_opts.fragment_branches = 8; /* on past the jb */
    struct fragment *f = translate_fragment(ctx, fib, true);
    dbo_opts.fragment_branches = branches;
    assert_non_null(f);
    assert_int_equal(f->n_insns, 6);
    uint64_t guest = fib, last_guest = 0;
    uint32_t off = f->first_insn_off;
    const uint8_t *map = fragment_pc_map(f);
    for (uint32_t i = 0; i < f->n_insns; i++) {
        struct pc_map_step step = pc_map_read(&map);
        uint32_t len = i + 1 < f->n_insns ? step.cache_len : 3;
        assert_true(len > 0);
        for (uint32_t b = 0; b < len; b++) {
            uint64_t guest_pc;
            bool spilled, at_boundary;
            assert_true(translator_guest_pc((uint64_t)f->cache_pc + off + b, &guest_pc, &spilled,
                                            &at_boundary));
            assert_int_equal(guest_pc, guest);
            assert_int_equal(at_boundary, b == 0);
            assert_false(spilled);
        }
        last_guest = guest;
        guest += (uint64_t)lengths[i];
        off += len;
    }
    assert_int_equal(last_guest, fib + 9); /* the call */
    uint64_t guest_pc;
    bool spilled, at_boundary;
    if (f->first_insn_off)
        assert_false(translator_guest_pc((uint64_t)f->cache_pc + f->first_insn_off - 1, &guest_pc,
                                         &spilled, &at_boundary));
    context_release(ctx);
}

static void test_not_executable(void **state)
{
    (void)state;
    static uint8_t data[64];
    struct guest_context *ctx = context_create(true);
    assert_null(translate_fragment(ctx, (uint64_t)data, true));
    context_release(ctx);
}

static void test_exit(void **state)
{
    (void)state;
    assert_int_equal(run_guest(guest_exit42, true), 42);
    assert_int_equal(run_guest(guest_exit42, false), 42);
}

static void test_rip_relative(void **state)
{
    (void)state;
    assert_int_equal(run_guest(guest_riprel, true), 7);
}

static void test_flags_across_indirect(void **state)
{
    (void)state;
    assert_int_equal(run_guest(guest_flags, true), 5);
    assert_int_equal(run_guest(guest_flags, false), 5);
}

/* A fragment goes on past conditional branches, up to the option's count;
 * each branch leaves through an exit of its own. */
static void test_fragment_branches(void **state)
{
    (void)state;
    struct guest_context *ctx = context_create(true);
    dbo_opts.fragment_branches = 8;
    struct fragment *f = translate_fragment(ctx, (uint64_t)guest_branches, true);
    assert_non_null(f);
    assert_int_equal(fragment_guest_end(f), (uint64_t)guest_branches_end);
    assert_int_equal(f->n_exits, 3); /* jz, jz, syscall */
    assert_int_equal(fragment_exits(f)[0].kind, EXIT_DIRECT);
    assert_int_equal(exit_target(&fragment_exits(f)[0]), (uint64_t)guest_exit42);
    assert_int_equal(fragment_exits(f)[2].kind, EXIT_SYSCALL);
    assert_int_equal(f->n_insns, 7);
    translator_flush(ctx);
    dbo_opts.fragment_branches = 0;
    f = translate_fragment(ctx, (uint64_t)guest_branches, true);
    assert_int_equal(f->guest_len, 4); /* test (2) + jz (2) */
    assert_int_equal(f->n_exits, 2);   /* taken, fall-through */
    translator_flush(ctx);
    dbo_opts.fragment_branches = 8;
    context_release(ctx);
    /* and it runs */
    assert_int_equal(run_guest(guest_branches, true), 42); /* %edi is 0 */
}

/* Runs guest code (it exits 0) and reads its indirect-branch line of
 * --stats: hits in the table (victim table included) and misses. */
static void run_indirect_counts(uint8_t *guest, long *table, long *missed)
{
    char line[256];
    assert_int_equal(run_guest_stats(guest, "indirect branches", line, sizeof line), 0);
    *table = *missed = -1;
    sscanf(line,
           "indirect branches %*d (%*d hit an inline target or trace guard, %ld the table, %ld "
           "missed",
           table, missed);
}

/* Two hot targets that share an indirect-table slot both stay in the table
 * (its second way): a handful of misses, not one per jump. */
static void test_slot_pair(void **state)
{
    (void)state;
    long table, missed;
    run_indirect_counts(guest_slot_pair, &table, &missed);
    assert_true(table >= 990);
    assert_in_range(missed, 1, 8);
}

/* Three hot targets that share a slot: the one the table's two ways have
 * no room for is found in the victim table, and only every
 * VICTIM_PROMOTE_EVERY-th of the victim hits goes through the dispatcher
 * (which puts it back in the table), not each one. */
static void test_victim_table(void **state)
{
    (void)state;
    long table, missed;
    run_indirect_counts(guest_slot_triple, &table, &missed);
    assert_true(table >= 1400);
    assert_in_range(missed, 3, 100); /* a miss each time (no victim table): 500 */
}

/* --perf-map names a fragment's code in runs of one kind, end to end:
 * guest_branches is test, jz, test, jz, mov, mov, syscall. */
static void test_perf_map(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    unlink(path);
    dbo_opts.perf_map = true;
    dbo_opts.fragment_branches = 8; /* one fragment, on past both jz */
    struct guest_context *ctx = context_create(true);
    struct fragment *f = translate_fragment(ctx, (uint64_t)guest_branches, true);
    translator_flush_perf_map();
    dbo_opts.perf_map = false;
    assert_non_null(f);
    FILE *map = fopen(path, "r");
    assert_non_null(map);
    static const char *const kinds[] = {"entry",  "code", "branch",  "code",
                                        "branch", "code", "syscall", "cold"};
    static const int guest_off[] = {0, 0, 2, 4, 6, 8, 18, 0};
    uint64_t at = (uint64_t)f->cache_pc - INDIRECT_ENTRY_SIZE;
    for (int i = 0; i < 8; i++) {
        unsigned long start, size, guest;
        char kind[16];
        assert_int_equal(fscanf(map, "%lx %lx dbo:%15s 0x%lx", &start, &size, kind, &guest), 4);
        assert_string_equal(kind, kinds[i]);
        assert_int_equal(guest, (uint64_t)guest_branches + guest_off[i]);
        if (i < 7) { /* the hot code, without a gap */
            assert_int_equal(start, at);
            at += size;
        } else {
            assert_int_equal(size, f->cold_bytes);
        }
    }
    assert_int_equal(at, (uint64_t)f->cache_pc + f->cache_size);
    fclose(map);
    /* A fork child runs the parent's code: its file starts with the
     * parent's lines, those written and those still buffered. */
    dbo_opts.perf_map = true;
    struct fragment *g = translate_fragment(ctx, (uint64_t)guest_exit42, true); /* buffered */
    dbo_opts.perf_map = false;
    assert_non_null(g);
    pid_t child = fork();
    if (child == 0) {
        translator_perf_map_after_fork();
        translator_flush_perf_map();
        _exit(0);
    }
    assert_int_equal(waitpid(child, NULL, 0), child);
    translator_flush_perf_map();
    char child_path[64], mine[8192] = {0}, theirs[8192] = {0};
    snprintf(child_path, sizeof child_path, "/tmp/perf-%d.map", (int)child);
    FILE *a = fopen(path, "r"), *b = fopen(child_path, "r");
    assert_non_null(a);
    assert_non_null(b);
    size_t na = fread(mine, 1, sizeof mine - 1, a), nb = fread(theirs, 1, sizeof theirs - 1, b);
    fclose(a);
    fclose(b);
    assert_true(na > 0);
    assert_int_equal(na, nb);
    assert_string_equal(mine, theirs);
    unlink(path);
    unlink(child_path);
    context_release(ctx);
}

/* An inner entry (cache.h): a loop head inside the fragment that runs
 * into it is entered there, in that fragment's code, not copied; a direct
 * branch to it links there; it dies with that fragment. */
static void test_inner_entry(void **state)
{
    (void)state;
    dbo_opts.inner_entries = true;
    dbo_opts.fragment_branches = 8; /* guest_inner's fragment goes on past the jnz */
    struct guest_context *ctx = context_create(true);
    uint64_t head = (uint64_t)guest_inner_loop;
    struct fragment *f = translate_fragment(ctx, (uint64_t)guest_inner, true);
    assert_false(f->is_inner_entry);
    assert_true(fragment_guest_end(f) > head + 7);
    /* (an indirect branch's target gets a fragment of its own) */
    struct fragment *own = translate_fragment(ctx, head, false);
    assert_false(own->is_inner_entry);
    assert_int_equal(own->guest_pc, head);
    translator_invalidate(head, 1); /* f and own */
    f = translate_fragment(ctx, (uint64_t)guest_inner, true);
    struct fragment *e = translate_fragment(ctx, head, true);
    assert_true(e->is_inner_entry);
    assert_ptr_equal(cache_lookup(head), e);
    assert_int_equal(fragment_guest_end(e), fragment_guest_end(f));
    /* its code is the head's in f */
    uint64_t guest_pc;
    bool spilled, at_boundary;
    assert_true(e->cache_pc > f->cache_pc && e->cache_pc < f->cache_pc + f->cache_size);
    assert_true(translator_guest_pc((uint64_t)e->cache_pc, &guest_pc, &spilled, &at_boundary));
    assert_int_equal(guest_pc, head);
    assert_true(at_boundary);
    assert_false(spilled);
    /* its indirect entry restores %rcx as f's does, then jumps there */
    const uint8_t *stub = (const uint8_t *)fragment_indirect_entry(e);
    assert_memory_equal(stub, f->cache_pc - INDIRECT_ENTRY_SIZE, INDIRECT_ENTRY_SIZE);
    assert_int_equal(stub[INDIRECT_ENTRY_SIZE], 0xe9);
    int32_t rel;
    memcpy(&rel, stub + INDIRECT_ENTRY_SIZE + 1, 4);
    assert_ptr_equal(stub + INDIRECT_ENTRY_SIZE + 5 + rel, e->cache_pc);
    /* a jump to the head from elsewhere links straight to that code */
    struct fragment *b = translate_fragment(ctx, (uint64_t)guest_inner_jump, true);
    struct exit_record *x = &fragment_exits(b)[b->n_exits - 1];
    assert_int_equal(exit_target(x), head);
    assert_true(x->linked);
    memcpy(&rel, exit_branch(x), 4);
    assert_ptr_equal(exit_branch(x) + 4 + rel, e->cache_pc);
    /* the jump's fragment dies: its link leaves the entry's incoming list */
    translator_invalidate((uint64_t)guest_inner_jump, 1);
    assert_true(b->dead && !e->dead);
    assert_int_equal(e->incoming, 0);
    /* linked again; a write before the head kills f, and the entry with
     * it: the jump goes back to its stub, the head gets its own fragment */
    b = translate_fragment(ctx, (uint64_t)guest_inner_jump, true);
    x = &fragment_exits(b)[b->n_exits - 1];
    assert_true(x->linked);
    translator_invalidate((uint64_t)guest_inner, 1);
    assert_true(f->dead && e->dead && !b->dead);
    assert_false(x->linked);
    assert_null(cache_lookup(head));
    assert_false(translate_fragment(ctx, head, true)->is_inner_entry);
    /* none where code relies on what ran before it: guest_exit42's
     * syscall (at +10) was translated knowing its number */
    assert_true(translate_fragment(ctx, (uint64_t)guest_exit42, true)->whole_only);
    assert_false(translate_fragment(ctx, (uint64_t)guest_exit42 + 10, true)->is_inner_entry);
    translator_flush(ctx);
    context_release(ctx);
    /* and it runs: the back edge goes in through the entry */
    char line[256];
    assert_int_equal(run_guest_stats(guest_inner, "fragments built", line, sizeof line), 42);
    long built = -1, entries = -1;
    sscanf(line, "fragments built %ld (and %ld entries", &built, &entries);
    assert_int_equal(entries, 1);
    assert_int_equal(run_guest(guest_inner_jump, false), 42);
    dbo_opts.inner_entries = false;
}

/* An instruction dbo cannot translate past a fragment's first ends the
 * fragment before it: only running it is an error. */
static void test_unreached_untranslatable(void **state)
{
    (void)state;
    dbo_opts.fragment_branches = 8;
    struct guest_context *ctx = context_create(true);
    struct fragment *f = translate_fragment(ctx, (uint64_t)guest_unreached, true);
    /* mov(5) test(2) jnz(2): stops at the int $0x80 */
    assert_int_equal(fragment_guest_end(f), (uint64_t)guest_unreached + 9);
    translator_flush(ctx);
    context_release(ctx);
    assert_int_equal(run_guest(guest_unreached, false), 42);
}

/* A switch's jump through its table: its site learns each case once (a
 * miss each, through the dispatcher), then every jump hits. */
static void test_table_jump(void **state)
{
    (void)state;
    dbo_opts.table_jumps = true;
    char line[256];
    assert_int_equal(run_guest_stats(guest_table_jump, "jump-table sites", line, sizeof line), 0);
    long hits = -1, sites = -1;
    sscanf(line, "jump-table sites %ld hits at %ld", &hits, &sites);
    assert_int_equal(sites, 1);
    assert_in_range(hits, 1000, 1024);
    long table, missed;
    run_indirect_counts(guest_table_jump, &table, &missed);
    assert_in_range(missed, 8, 12);
    dbo_opts.table_jumps = false; /* the usual lookup: no site */
    assert_int_equal(run_guest_stats(guest_table_jump, "jump-table sites", line, sizeof line), 0);
    sscanf(line, "jump-table sites %ld hits at %ld", &hits, &sites);
    assert_int_equal(sites, 0);
    assert_int_equal(hits, 0);
}

/* Two cases whose indexes share a site's slot, in turn: every jump still
 * goes to its own case (the slot holds its target's tag), and a miss goes
 * to the dispatcher only every SITE_LEARN_EVERY-th time (the thread's
 * table serves the rest), not each time. */
static void test_table_jump_thrash(void **state)
{
    (void)state;
    dbo_opts.table_jumps = true;
    long table, missed;
    run_indirect_counts(guest_table_thrash, &table, &missed);
    dbo_opts.table_jumps = false;
    assert_true(table >= 1000);
    assert_in_range(missed, 2, 2 + 1024 / SITE_LEARN_EVERY + 4);
}

/* System calls with a number known when translated and one known only
 * at run time both take the gate's fast path and agree. */
static void test_fast_syscalls(void **state)
{
    (void)state;
    char line[256];
    syscall_fast_init();
    assert_int_equal(run_guest_stats(guest_fast_syscalls, "syscalls", line, sizeof line), 0);
    long all = -1, fast = -1;
    sscanf(line, "syscalls %ld (%ld through the gate's fast path)", &all, &fast);
    assert_true(fast >= 200);
    assert_true(all >= fast);
}

/* cpuid is answered from memory: the CPU is asked once for leaf 0 of the
 * 201 times the guest asks, the answers zero-extended, flags kept. The
 * memo gives what the CPU gives, leaf by leaf. */
static void test_cpuid(void **state)
{
    (void)state;
    char line[256];
    assert_int_equal(run_guest_stats(guest_cpuid, "cpuid", line, sizeof line), 42);
    long all = -1, asked = -1;
    sscanf(line, "cpuid %ld (%ld asked of the CPU", &all, &asked);
    assert_int_equal(all, 201);
    /* leaf 0, and what context_create() asks first: the XSAVE image's size
     * and where it keeps components 2, 5, 6 and 7 (leaf 0xd) */
    assert_in_range(asked, 1, 6);
    static const uint32_t leaves[][2] = {{0, 0}, {7, 0}, {0xd, 1}, {0x80000000, 0}, {0, 0}};
    for (size_t i = 0; i < sizeof leaves / sizeof *leaves; i++) {
        uint32_t memo[4], cpu[4];
        cpuid_answer(leaves[i][0], leaves[i][1], memo);
        __cpuid_count(leaves[i][0], leaves[i][1], cpu[0], cpu[1], cpu[2], cpu[3]);
        assert_memory_equal(memo, cpu, sizeof memo);
    }
    /* the leaves dbo's glibc kept as the CPU gave them: answered from
     * there, not asked again, and the same as the CPU's answer */
    static const uint32_t kept[][2] = {{7, 1},          {0x14, 0},       {0x19, 0},
                                       {0x80000001, 0}, {0x80000007, 0}, {0x80000008, 0}};
    uint32_t max[4], max_ext[4];
    __cpuid_count(0, 0, max[0], max[1], max[2], max[3]);
    __cpuid_count(0x80000000, 0, max_ext[0], max_ext[1], max_ext[2], max_ext[3]);
    uint64_t executed = dbo_stats.cpuid_executed;
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++) {
        if (kept[i][0] > (kept[i][0] & 0x80000000 ? max_ext[0] : max[0]))
            continue; /* a leaf this CPU does not have */
        uint32_t memo[4], cpu[4];
        cpuid_answer(kept[i][0], kept[i][1], memo);
        __cpuid_count(kept[i][0], kept[i][1], cpu[0], cpu[1], cpu[2], cpu[3]);
        assert_memory_equal(memo, cpu, sizeof memo);
    }
    assert_int_equal(dbo_stats.cpuid_executed, executed);
}

static void test_recursion(void **state)
{
    (void)state;
    assert_int_equal(run_guest(guest_fib, true), 610 & 0xff);
}

/* The return stack: calls and returns that do not pair, and a recursion
 * deeper than it holds, run right; the returns whose entries are there
 * reach their call's pad, the others go through the table. Without it,
 * the same result. */
static void test_return_stack(void **state)
{
    (void)state;
    char line[256];
    dbo_opts.return_stack = true;
    assert_int_equal(run_guest_stats(guest_return_stack, "return stack", line, sizeof line), 42);
    long hits = -1, misses = -1;
    sscanf(line, "return stack %ld returns reached their call, %ld did not", &hits, &misses);
    /* The stack holds 131071 entries: the 150000 calls of the recursion
     * overflow it once, which empties it; the 18929 calls from there on,
     * and the 1000 plain ones, reach their pads. The 131071 returns whose
     * entries were dropped do not, nor does the return without a call
     * (it finds the entry the dropped return address left). */
    assert_in_range(hits, 18929 + 1000, 18929 + 1000 + 5);
    assert_in_range(misses, 131071 + 1, 131071 + 1 + 5);
    assert_int_equal(run_guest(guest_return_stack, false), 42);
    dbo_opts.return_stack = false;
    assert_int_equal(run_guest_stats(guest_return_stack, "return stack", line, sizeof line), 42);
    sscanf(line, "return stack %ld returns reached their call, %ld did not", &hits, &misses);
    assert_int_equal(hits, 0);
    assert_int_equal(misses, 0);
}

/* quick_decode agrees with Zydis wherever it answers: same length, ModRM
 * and displacement; for a direct branch, call or return the same
 * mnemonic, category and target (or count); and never for an instruction
 * the translator rewrites otherwise (an indirect branch, a system call or
 * interrupt, a %gs operand). */
static void expect_agrees(const ZydisDecoder *zydis, const uint8_t *bytes, int *claimed,
                          int *branches)
{
    ZydisDecodedInstruction quick, full;
    ZydisDecodedOperand quick_ops[ZYDIS_MAX_OPERAND_COUNT], full_ops[ZYDIS_MAX_OPERAND_COUNT];
    struct quick_copy copy;
    bool copied = quick_copy(bytes, 15, &copy);
    if (!quick_decode(bytes, 15, &quick, quick_ops)) {
        assert_false(copied);
        return;
    }
    /* the translator's fast path sees what a copy reads, and only copies */
    assert_int_equal(copied, quick.mnemonic == ZYDIS_MNEMONIC_INVALID);
    if (copied) {
        assert_int_equal(copy.length, quick.length);
        assert_int_equal(copy.modrm_offset, quick.raw.modrm.offset);
        assert_int_equal(copy.disp_size * 8, quick.raw.disp.size);
        assert_int_equal(copy.disp_offset, quick.raw.disp.offset);
        assert_int_equal(copy.disp, quick.raw.disp.value);
        if (copy.modrm_offset) {
            assert_int_equal(copy.modrm >> 6, quick.raw.modrm.mod);
            assert_int_equal(copy.modrm & 7, quick.raw.modrm.rm);
        }
    }
    (*claimed)++;
    if (ZYAN_FAILED(ZydisDecoderDecodeFull(zydis, bytes, 15, &full, full_ops))) {
        fprintf(stderr, "quick_decode took invalid bytes %02x %02x %02x %02x\n", bytes[0], bytes[1],
                bytes[2], bytes[3]);
        fail();
    }
    if (quick.length != full.length)
        fprintf(stderr, "length %d, Zydis %d: %02x %02x %02x %02x\n", quick.length, full.length,
                bytes[0], bytes[1], bytes[2], bytes[3]);
    assert_int_equal(quick.length, full.length);
    assert_false(full.attributes & ZYDIS_ATTRIB_HAS_SEGMENT_GS);
    bool branch = full.meta.category == ZYDIS_CATEGORY_COND_BR ||
                  full.meta.category == ZYDIS_CATEGORY_UNCOND_BR ||
                  full.meta.category == ZYDIS_CATEGORY_CALL ||
                  full.meta.category == ZYDIS_CATEGORY_RET;
    if (branch) {
        (*branches)++;
        assert_int_equal(quick.mnemonic, full.mnemonic);
        assert_int_equal(quick.meta.category, full.meta.category);
        assert_int_not_equal(full.meta.branch_type, ZYDIS_BRANCH_TYPE_FAR);
        assert_int_equal(quick.opcode, full.opcode);
        if (full_ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE) {
            assert_int_equal(quick_ops[0].type, ZYDIS_OPERAND_TYPE_IMMEDIATE);
            assert_int_equal(quick_ops[0].imm.is_relative, full_ops[0].imm.is_relative);
            assert_int_equal(quick_ops[0].imm.value.u, full_ops[0].imm.value.u);
            if (full_ops[0].imm.is_relative) {
                uint64_t target = 0, pc = 0x7f0000001000;
                ZydisCalcAbsoluteAddress(&full, &full_ops[0], pc, &target);
                assert_int_equal(pc + quick.length + quick_ops[0].imm.value.s, target);
            }
        } else if (full.opcode == 0xff) {
            /* an indirect one: what loading its target reads */
            assert_int_equal(quick_ops[0].type, full_ops[0].type);
            if (full_ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER)
                assert_int_equal(quick_ops[0].reg.value, full_ops[0].reg.value);
            assert_int_equal(quick.raw.rex.X, full.raw.rex.X);
            assert_int_equal(quick.raw.rex.B, full.raw.rex.B);
            assert_int_equal(quick.raw.modrm.offset, full.raw.modrm.offset);
            assert_int_equal(quick.raw.modrm.mod, full.raw.modrm.mod);
            assert_int_equal(quick.raw.modrm.rm, full.raw.modrm.rm);
            if (full.raw.modrm.mod != 3 && full.raw.modrm.rm == 4)
                assert_int_equal(quick.raw.sib.offset, full.raw.sib.offset);
            assert_int_equal(quick.raw.disp.size, full.raw.disp.size);
            assert_int_equal(quick.raw.disp.offset, full.raw.disp.offset);
            assert_int_equal(quick.raw.disp.value, full.raw.disp.value);
        } else {
            assert_int_not_equal(quick_ops[0].type, ZYDIS_OPERAND_TYPE_IMMEDIATE);
        }
        return;
    }
    assert_int_equal(quick.mnemonic, ZYDIS_MNEMONIC_INVALID);
    assert_int_equal(quick_ops[0].type, ZYDIS_OPERAND_TYPE_UNUSED);
    if ((quick.attributes & ZYDIS_ATTRIB_HAS_MODRM) != (full.attributes & ZYDIS_ATTRIB_HAS_MODRM))
        fprintf(stderr, "ModRM %d, Zydis %d: %02x %02x %02x %02x\n",
                !!(quick.attributes & ZYDIS_ATTRIB_HAS_MODRM),
                !!(full.attributes & ZYDIS_ATTRIB_HAS_MODRM), bytes[0], bytes[1], bytes[2],
                bytes[3]);
    assert_int_equal(quick.attributes & ZYDIS_ATTRIB_HAS_MODRM,
                     full.attributes & ZYDIS_ATTRIB_HAS_MODRM);
    if (full.attributes & ZYDIS_ATTRIB_IS_RELATIVE) /* only a rip-relative operand */
        assert_true(full.raw.modrm.mod == 0 && full.raw.modrm.rm == 5);
    assert_false(full.meta.category == ZYDIS_CATEGORY_INTERRUPT ||
                 full.meta.category == ZYDIS_CATEGORY_SYSCALL ||
                 full.meta.category == ZYDIS_CATEGORY_SYSTEM);
    if (full.attributes & ZYDIS_ATTRIB_HAS_MODRM) {
        assert_int_equal(quick.raw.modrm.offset, full.raw.modrm.offset);
        assert_int_equal(quick.raw.modrm.mod, full.raw.modrm.mod);
        assert_int_equal(quick.raw.modrm.rm, full.raw.modrm.rm);
    }
    assert_int_equal(quick.raw.disp.size, full.raw.disp.size);
    if (full.raw.disp.size) {
        assert_int_equal(quick.raw.disp.offset, full.raw.disp.offset);
        assert_int_equal(quick.raw.disp.value, full.raw.disp.value);
    }
}

static int check_loaded_code(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const ZydisDecoder *zydis = ((const ZydisDecoder **)data)[0];
    int *claimed = ((int **)data)[1], *branches = ((int **)data)[2];
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        const uint8_t *code = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        size_t len = ph->p_memsz;
        ZydisDecodedInstruction insn;
        for (size_t off = 0; off + 15 <= len;) { /* a linear sweep, as compiled */
            expect_agrees(zydis, code + off, claimed, branches);
            if (ZYAN_FAILED(ZydisDecoderDecodeInstruction(zydis, NULL, code + off, 15, &insn)))
                off++;
            else
                off += insn.length;
        }
    }
    return 0;
}

static void test_quick_decode(void **state)
{
    (void)state;
    ZydisDecoder zydis;
    ZydisDecoderInit(&zydis, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    /* the code loaded in this process: libc, Zydis, cmocka, this test */
    int claimed = 0, branches = 0;
    const void *data[3] = {&zydis, &claimed, &branches};
    dl_iterate_phdr(check_loaded_code, data);
    assert_true(claimed > 100000); /* and it answers for most of it */
    assert_true(branches > 20000);
    /* random bytes, half of them after a REX prefix */
    srandom(1);
    int random_claimed = 0, random_branches = 0;
    for (int n = 0; n < 2000000; n++) {
        uint8_t bytes[16];
        for (int k = 0; k < 16; k++)
            bytes[k] = (uint8_t)random();
        if (n & 1)
            bytes[0] = 0x40 | (bytes[0] & 15);
        expect_agrees(&zydis, bytes, &random_claimed, &random_branches);
    }
    assert_true(random_claimed > 100000);
    assert_true(random_branches > 20000);
    /* random bytes after legacy prefixes (operand size, mandatory, segment
     * overrides, and some it must leave to Zydis), a REX prefix and the
     * escapes to the 0f, 0f38 and 0f3a maps: what the SSE tables answer */
    static const uint8_t prefixes[] = {0x66, 0xf3, 0xf2, 0x64, 0x2e, 0x3e, 0x65, 0xf0, 0x67, 0x26};
    int prefixed_claimed = 0, prefixed_branches = 0;
    for (int n = 0; n < 2000000; n++) {
        uint8_t bytes[16];
        for (int k = 0; k < 16; k++)
            bytes[k] = (uint8_t)random();
        int at = 0;
        bytes[at++] = prefixes[random() % sizeof prefixes];
        if (n & 1)
            bytes[at++] = prefixes[random() % sizeof prefixes];
        if (n & 2) {
            bytes[at] = 0x40 | (bytes[at] & 15);
            at++;
        }
        if (n & 4) {
            bytes[at++] = 0x0f;
            if ((n & 24) == 8)
                bytes[at++] = 0x38;
            else if ((n & 24) == 16)
                bytes[at++] = 0x3a;
        }
        expect_agrees(&zydis, bytes, &prefixed_claimed, &prefixed_branches);
    }
    assert_true(prefixed_claimed > 150000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fragment_shape),
        cmocka_unit_test(test_pc_map),
        cmocka_unit_test(test_not_executable),
        cmocka_unit_test(test_exit),
        cmocka_unit_test(test_rip_relative),
        cmocka_unit_test(test_flags_across_indirect),
        cmocka_unit_test(test_recursion),
        cmocka_unit_test(test_fragment_branches),
        cmocka_unit_test(test_slot_pair),
        cmocka_unit_test(test_victim_table),
        cmocka_unit_test(test_fast_syscalls),
        cmocka_unit_test(test_return_stack),
        cmocka_unit_test(test_unreached_untranslatable),
        cmocka_unit_test(test_quick_decode),
        cmocka_unit_test(test_table_jump),
        cmocka_unit_test(test_table_jump_thrash),
        cmocka_unit_test(test_perf_map),
        cmocka_unit_test(test_inner_entry),
        cmocka_unit_test(test_cpuid),
    };
    return cmocka_run_group_tests_name("translator", tests, setup, NULL);
}
