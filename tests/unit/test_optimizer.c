/* Optimizer unit tests: trace heads, recording and the traces built from
 * them, on guest code the host cannot execute in place (guest_code.S). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/cache.h"
#include "optimizer/optimizer.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "translator/translator.h"
#include "tests/unit/run_guest.h"

extern uint8_t guest_code_start[], guest_code_end[], guest_trace_loop[], guest_trace_top[],
    guest_trace_even[], guest_trace_odd[], guest_trace_next[], guest_trace_leaf[],
    guest_trace_alternate[], guest_flags[], flags_dead_cmp[], flags_dead_after_moves[],
    flags_dead_inc_add[], flags_dead_jmp[], flags_dead_call[], flags_dead_both_ways[],
    flags_live_jcc[], flags_live_inc_jc[], flags_live_adc[], flags_live_ret[], flags_live_pushf[],
    flags_live_one_way[], flags_live_indirect[], guest_trace_dead_flags[], guest_trace_live_flags[],
    guest_trace_ret_elsewhere[];

static int setup(void **state)
{
    (void)state;
    guest_vm_record((uint64_t)guest_code_start, guest_code_end - guest_code_start,
                    PROT_READ | PROT_EXEC);
    return 0;
}

/* The recorded block at pc, as the recorder would see it. */
static struct guest_range block_at(struct guest_context *ctx, uint8_t *pc)
{
    struct fragment *b = translate_record_block(ctx, (uint64_t)pc);
    assert_non_null(b);
    assert_false(b->is_trace);
    return (struct guest_range){b->guest_pc, fragment_guest_end(b)};
}

static int exits_of_kind(const struct fragment *f, enum exit_kind kind, uint64_t target)
{
    int n = 0;
    for (uint32_t i = 0; i < f->n_exits; i++)
        n += fragment_exits(f)[i].kind == kind &&
             (kind == EXIT_INDIRECT || exit_target(&fragment_exits(f)[i]) == target);
    return n;
}

/* A trace along top -> odd -> leaf -> next -> top: the taken branch is
 * inverted (its exit goes to the even path), the call and the return to it
 * are inlined behind a guard, and the loop leaves for its head. */
static void test_trace_shape(void **state)
{
    (void)state;
    struct guest_context *ctx = context_create(true);
    struct guest_range path[] = {block_at(ctx, guest_trace_top), block_at(ctx, guest_trace_odd),
                                 block_at(ctx, guest_trace_leaf), block_at(ctx, guest_trace_next)};
    assert_int_equal(path[1].end, (uint64_t)guest_trace_next); /* a call ends a block */
    struct fragment *t = translate_trace(ctx, path, 4, (uint64_t)guest_trace_top);
    assert_non_null(t);
    assert_true(t->is_trace);
    assert_int_equal(t->guest_pc, (uint64_t)guest_trace_top);
    /* test, jnz, call, add, ret, dec, jnz */
    assert_int_equal(t->n_insns, 7);
    assert_int_equal(t->n_ranges, 4);
    assert_int_equal(fragment_range(t, 2).start, (uint64_t)guest_trace_leaf);
    assert_int_equal(exits_of_kind(t, EXIT_DIRECT, (uint64_t)guest_trace_even), 1);
    assert_int_equal(exits_of_kind(t, EXIT_DIRECT, (uint64_t)guest_trace_odd), 0);
    assert_int_equal(exits_of_kind(t, EXIT_INDIRECT, 0), 1); /* the return's guard */
    assert_int_equal(exits_of_kind(t, EXIT_DIRECT, (uint64_t)guest_trace_top), 1);
    /* Each copied instruction maps back to its own guest address. */
    cache_insert_transient(t); /* findable by its cache address */
    uint32_t off = t->first_insn_off;
    const uint8_t *map = fragment_pc_map(t);
    struct pc_map_step step;
    for (uint32_t i = 0; i < t->n_insns; off += step.cache_len, i++) {
        step = pc_map_read(&map);
        uint64_t guest_pc;
        bool spilled, at_boundary;
        assert_true(
            translator_guest_pc((uint64_t)t->cache_pc + off, &guest_pc, &spilled, &at_boundary));
        assert_true(at_boundary);
        if (i + 1 < t->n_insns && step.cache_len == 0)
            continue; /* a jump the trace drops has no code: the next one's offset */
        assert_int_equal(guest_pc, fragment_insn_pcs(t)[i]);
        if (step.cache_len > 1) { /* inside it, the same */
            assert_true(translator_guest_pc((uint64_t)t->cache_pc + off + 1, &guest_pc, &spilled,
                                            &at_boundary));
            assert_false(at_boundary);
            assert_int_equal(guest_pc, fragment_insn_pcs(t)[i]);
        }
    }
    assert_int_equal(fragment_insn_pcs(t)[3], (uint64_t)guest_trace_leaf);
    translator_flush(ctx);
    context_release(ctx);
}

/* An installed trace replaces its head, and writing to any block it was
 * built from (here the leaf, on another part of the page) drops it. */
static void test_trace_install_and_invalidate(void **state)
{
    (void)state;
    struct guest_context *ctx = context_create(true);
    struct fragment *head = translate_fragment(ctx, (uint64_t)guest_trace_top, true);
    assert_ptr_equal(cache_lookup((uint64_t)guest_trace_top), head);
    struct guest_range path[] = {block_at(ctx, guest_trace_top), block_at(ctx, guest_trace_odd),
                                 block_at(ctx, guest_trace_leaf), block_at(ctx, guest_trace_next)};
    struct fragment *t = translate_trace(ctx, path, 4, (uint64_t)guest_trace_top);
    translator_install_trace(t);
    assert_ptr_equal(cache_lookup((uint64_t)guest_trace_top), t);
    assert_true(head->dead);
    translator_invalidate((uint64_t)guest_trace_leaf, 1);
    assert_true(t->dead);
    assert_null(cache_lookup((uint64_t)guest_trace_top));
    translator_flush(ctx);
    context_release(ctx);
}

/* Run with traces after 2 runs of a head: same result, traces built. */
static void test_traces_run(void **state)
{
    (void)state;
    char line[256];
    dbo_opts.trace_threshold = 2;
    assert_int_equal(run_guest_stats(guest_trace_loop, "traces", line, sizeof line), 144);
    long built = -1, heads = -1;
    sscanf(line, "traces %ld built from %ld heads", &built, &heads);
    assert_true(built >= 1);
    assert_true(heads >= built);
    /* and no trace at all without a threshold */
    dbo_opts.trace_threshold = 0;
    assert_int_equal(run_guest_stats(guest_trace_loop, "traces", line, sizeof line), 144);
    sscanf(line, "traces %ld built from %ld heads", &built, &heads);
    assert_int_equal(built, 0);
    assert_int_equal(heads, 0);
}

/* A guard that misses half the time goes the right way and keeps the
 * flags; so do the return guards of guest_flags. */
static void test_trace_guard_misses(void **state)
{
    (void)state;
    char line[256];
    dbo_opts.trace_threshold = 2;
    dbo_opts.trace_indirect = true;
    assert_int_equal(run_guest_stats(guest_trace_alternate, "indirect branches", line, sizeof line),
                     44);
    long guarded = -1, table = -1;
    sscanf(line, "indirect branches %*d (%ld hit an inline target or trace guard, %ld the table",
           &guarded, &table);
    assert_true(guarded >= 40); /* about half of the 100 */
    assert_true(table >= 40);
    assert_int_equal(run_guest_stats(guest_flags, "traces", line, sizeof line), 5);
    dbo_opts.trace_threshold = 0;
    dbo_opts.trace_indirect = false;
}

/* Flags liveness, on code where it is known. */
static void test_flags_liveness(void **state)
{
    (void)state;
    dbo_opts.flags_liveness = true;
    uint8_t *dead[] = {flags_dead_cmp, flags_dead_after_moves, flags_dead_inc_add,
                       flags_dead_jmp, flags_dead_call,        flags_dead_both_ways};
    uint8_t *live[] = {flags_live_jcc,   flags_live_inc_jc,  flags_live_adc,     flags_live_ret,
                       flags_live_pushf, flags_live_one_way, flags_live_indirect};
    for (size_t i = 0; i < sizeof dead / sizeof *dead; i++)
        if (!optimizer_flags_dead_at((uint64_t)dead[i]))
            fail_msg("flags not found dead at case %zu", i);
    for (size_t i = 0; i < sizeof live / sizeof *live; i++)
        if (optimizer_flags_dead_at((uint64_t)live[i]))
            fail_msg("flags found dead at live case %zu", i);
    dbo_opts.flags_liveness = false; /* --no-flags-liveness: never dead */
    assert_false(optimizer_flags_dead_at((uint64_t)flags_dead_cmp));
}

/* Traces whose head counters use add where the flags are dead run right,
 * and keep the flags where they are live. */
static void test_traces_flags(void **state)
{
    (void)state;
    char line[256];
    dbo_opts.trace_threshold = 2;
    dbo_opts.flags_liveness = true;
    assert_int_equal(run_guest_stats(guest_trace_dead_flags, "flags liveness", line, sizeof line),
                     401 & 0xff);
    long dead = -1, asked = -1;
    sscanf(line, "flags liveness dead at %ld of %ld", &dead, &asked);
    assert_true(dead >= 1); /* the loop head at least */
    assert_int_equal(run_guest(guest_trace_live_flags, true), 10);
    assert_int_equal(run_guest_stats(guest_trace_live_flags, "traces", line, sizeof line), 10);
    long built = -1;
    sscanf(line, "traces %ld built", &built);
    assert_true(built >= 1);
    /* A return guard that misses goes on with the guest's flags, though
     * they were dead where it expected the return to go. */
    assert_int_equal(run_guest(guest_trace_ret_elsewhere, true), 101);
    dbo_opts.flags_liveness = false;
    assert_int_equal(run_guest(guest_trace_dead_flags, true), 401 & 0xff);
    dbo_opts.trace_threshold = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_shape),    cmocka_unit_test(test_trace_install_and_invalidate),
        cmocka_unit_test(test_traces_run),     cmocka_unit_test(test_trace_guard_misses),
        cmocka_unit_test(test_flags_liveness), cmocka_unit_test(test_traces_flags),
    };
    return cmocka_run_group_tests_name("optimizer", tests, setup, NULL);
}
