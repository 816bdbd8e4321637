/* Code cache unit tests: placement near guest code, the fragment table,
 * the code-page set, linking and flushing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_internal.h"
#include "cache/u64map.h"
#include "translator/translator.h"

/* A fragment record with 16 bytes of (unused) cache code of its own. */
static struct fragment *fake_fragment(uint64_t pc, uint64_t len)
{
    struct cache_chunk *c = cache_chunk_near((uint64_t)&fake_fragment, 64);
    struct fragment *f = calloc(1, fragment_alloc_size(1, 0, 0, false, 0));
    f->guest_pc = pc;
    f->guest_len = (uint16_t)len;
    f->cache_pc = cache_chunk_cursor(c);
    f->cache_size = 16;
    cache_chunk_commit(c, f->cache_pc + 16, 0);
    return f;
}

static void test_chunk_is_near(void **state)
{
    (void)state;
    uint64_t pc = (uint64_t)&test_chunk_is_near;
    struct cache_chunk *c = cache_chunk_near(pc, 4096);
    assert_non_null(c);
    uint64_t at = (uint64_t)cache_chunk_cursor(c);
    int64_t distance = (int64_t)(at - pc);
    assert_true(distance < (1ll << 31) && distance > -(1ll << 31));
    assert_true(cache_owns(at, 1));
    assert_false(cache_owns(pc, 1));
    /* Commit keeps fragments 16-byte aligned. */
    cache_chunk_commit(c, cache_chunk_cursor(c) + 3, 0);
    assert_int_equal((uint64_t)cache_chunk_cursor(c) % 16, 0);
    assert_ptr_equal(cache_chunk_near(pc, 4096), c);
}

/* Cold code (exit stubs) grows down from the chunk's end, apart from the
 * fragments; both count as used, and a chunk whose free middle is too
 * small for a fragment is not offered for one. */
static void test_chunk_cold_code(void **state)
{
    (void)state;
    uint64_t pc = (uint64_t)&test_chunk_cold_code;
    struct cache_chunk *c = cache_chunk_near(pc, 4096);
    uint8_t *cursor = cache_chunk_cursor(c), *cold = cache_chunk_cold(c);
    assert_true(cold - cursor > (1 << 20));
    assert_true(cache_owns((uint64_t)cold - 1, 1));
    size_t used = cache_bytes_used();
    cache_chunk_commit(c, cursor + 32, 72);
    assert_ptr_equal(cache_chunk_cold(c), cold - 72);
    assert_ptr_equal(cache_chunk_cursor(c), cursor + 32);
    assert_int_equal(cache_bytes_used(), used + 32 + 72);
    /* Fill the middle up to 100 bytes short of the cold code: another
     * fragment of 4096 bytes does not fit there any more. */
    size_t left = (size_t)(cache_chunk_cold(c) - cache_chunk_cursor(c));
    cache_chunk_commit(c, cache_chunk_cursor(c), left - 100);
    assert_ptr_not_equal(cache_chunk_near(pc, 4096), c);
    /* A flush gives the chunk back whole. */
    cache_flush_all(false, 1);
    assert_ptr_equal(cache_chunk_near(pc, 4096), c);
    assert_ptr_equal(cache_chunk_cold(c), cold);
    assert_int_equal(cache_bytes_used(), 0);
}

static void test_table_many(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 20000; i++)
        cache_insert(fake_fragment(0x400000 + 16 * i, 16));
    for (uint64_t i = 0; i < 20000; i++) {
        struct fragment *f = cache_lookup(0x400000 + 16 * i);
        assert_non_null(f);
        assert_int_equal(f->guest_pc, 0x400000 + 16 * i);
    }
    assert_null(cache_lookup(0x400008));
    assert_true(cache_range_has_code(0x400000, 1));
    assert_true(cache_range_has_code(0x400000 + 16 * 19999, 16));
    assert_false(cache_range_has_code(0x400000 + 16 * 20000 + 4096, 4096));
    /* A huge range is answered without walking every page. */
    assert_true(cache_range_has_code(0, 1ull << 46));
    /* Cache PCs map back to their fragments. */
    struct fragment *f = cache_lookup(0x400000 + 16 * 777);
    assert_ptr_equal(cache_fragment_at((uint64_t)f->cache_pc + 5), f);
    cache_flush_all(false, 1);
    assert_null(cache_lookup(0x400000));
    assert_false(cache_range_has_code(0x400000, 1 << 20));
}

/* The table keeps the low half of a guest pc in its slot: pcs that share
 * it (4 GiB apart) are told apart by the fragment. Removing one (its
 * page invalidated) keeps the others findable, whatever their probe runs;
 * the page index forgets only that one. */
static void test_table_same_low_half(void **state)
{
    (void)state;
    /* Three groups of fragments, one per page, 4 GiB apart: with 6 000
     * entries many probe runs hold two pcs with the same low half. */
    enum { PER_GROUP = 2000, N = 3 * PER_GROUP };
    const uint64_t far = 1ull << 32, base = 0x10000000;
    static struct fragment *f[N];
    for (uint64_t i = 0; i < N; i++) {
        f[i] = fake_fragment(base + (i % 3) * far + 4096 * (i / 3), 16);
        cache_insert(f[i]);
    }
    for (uint64_t i = 0; i < N; i++)
        assert_ptr_equal(cache_lookup(f[i]->guest_pc), f[i]);
    assert_null(cache_lookup(base + 3 * far));
    /* Invalidate the middle group's pages. */
    assert_int_equal(cache_invalidate_range(base + far, 4096 * PER_GROUP, NULL, NULL), PER_GROUP);
    for (uint64_t i = 0; i < N; i++)
        assert_ptr_equal(cache_lookup(f[i]->guest_pc), i % 3 == 1 ? NULL : f[i]);
    assert_false(cache_range_has_code(base + far, 4096 * PER_GROUP));
    assert_true(cache_range_has_code(base + 2 * far, 4096 * PER_GROUP));
    assert_true(cache_range_has_code(base, 1));
    cache_flush_all(false, 1);
    for (uint64_t i = 0; i < N; i++)
        assert_null(cache_lookup(f[i]->guest_pc));
}

/* A target out of rel32 reach: the stub becomes an absolute jump, and
 * unlinking (the target invalidated) puts the stub's bytes back. */
static void test_link_far(void **state)
{
    (void)state;
    uint64_t pc = (uint64_t)&test_link_far;
    struct cache_chunk *c = cache_chunk_near(pc, 4096);
    uint8_t *code = cache_chunk_cursor(c);
    struct fragment *from = fake_fragment(0x2000, 1);
    uint32_t id = cache_serial_new(from) << 8;          /* its exit 0 */
    uint8_t stub[STUB_SIZE] = {0x65, 0xc7, 0x04, 0x25}; /* movl $id, %gs:stub_id */
    uint32_t at = CTX_STUB_ID, entry = CTX_STUB_ENTRY;
    memcpy(stub + 4, &at, 4);
    memcpy(stub + STUB_ID_AT, &id, 4);
    /* jmp rel32 to the chunk's stub tail, jmp *%gs:stub_entry */
    uint8_t *tail = cache_stub_tail(code + 8);
    assert_memory_equal(tail, ((const uint8_t[]){0x65, 0xff, 0x24, 0x25}), 4);
    assert_memory_equal(tail + 4, &entry, 4);
    int32_t to_tail = (int32_t)(tail - (code + 8 + STUB_SIZE));
    stub[12] = 0xe9;
    memcpy(stub + 13, &to_tail, 4);
    code[0] = 0xe9; /* jmp rel32 to the stub at code + 8 */
    int32_t to_stub = 3;
    memcpy(code + 1, &to_stub, 4);
    memcpy(code + 8, stub, sizeof stub);
    cache_chunk_commit(c, code + 64, 0);
    /* a target chunk near guest code 64 GiB away */
    struct cache_chunk *far_chunk = cache_chunk_near(pc + (64ull << 30), 4096);
    assert_non_null(far_chunk);
    struct fragment *to = fake_fragment(0x3000, 1);
    to->cache_pc = cache_chunk_cursor(far_chunk);
    cache_chunk_commit(far_chunk, to->cache_pc + 16, 0);
    from->cache_pc = code; /* its record's offsets are from there */
    struct exit_record *e = &fragment_exits(from)[0];
    from->n_exits = 1;
    *e = (struct exit_record){.kind = EXIT_DIRECT, .branch_off = 1, .stub_off = 8, .slot = 1};
    cache_link(e, to);
    assert_true(e->linked);
    assert_true(e->linked_far);
    assert_int_equal(to->incoming, exit_id(e));
    assert_int_equal(code[8], 0xff); /* jmp *0(%rip); .quad target */
    assert_int_equal(code[9], 0x25);
    assert_ptr_equal(exit_by_id(id), e);
    uint64_t target;
    memcpy(&target, code + 14, 8);
    assert_int_equal(target, (uint64_t)to->cache_pc);
    int32_t rel;
    memcpy(&rel, code + 1, 4);
    assert_int_equal(rel, 3); /* the branch still goes to the stub */
    unlink_fragment(to);
    assert_false(e->linked);
    assert_memory_equal(code + 8, stub, sizeof stub); /* with its id */
    cache_serial_release(from->serial);
    free(from);
    free(to);
}

/* A target in rel32 reach: the branch goes straight there. The record
 * keeps no pointer to the target: unlinking the exit's own fragment finds
 * it from the branch and takes the exit off its incoming list. */
static void test_link_near(void **state)
{
    (void)state;
    uint64_t pc = (uint64_t)&test_link_near;
    struct cache_chunk *c = cache_chunk_near(pc, 4096);
    uint8_t *code = cache_chunk_cursor(c);
    /* jmp rel32 at `code` pointing at a stub; link it to a fragment. */
    code[0] = 0xe9;
    int32_t to_stub = 3;
    memcpy(code + 1, &to_stub, 4);
    cache_chunk_commit(c, code + 64, 0);
    struct fragment *from = fake_fragment(0x2000, 1);
    cache_serial_new(from); /* a linked exit's fragment has one: it is on a list by id */
    from->cache_pc = code;
    from->n_exits = 1;
    struct exit_record *e = &fragment_exits(from)[0];
    *e = (struct exit_record){.kind = EXIT_DIRECT, .branch_off = 1, .stub_off = 8, .slot = 1};
    struct fragment *to = fake_fragment(0x1000, 1);
    cache_insert(to);
    cache_link(e, to);
    assert_true(e->linked);
    assert_false(e->linked_far);
    assert_int_equal(to->incoming, exit_id(e));
    int32_t rel;
    memcpy(&rel, code + 1, 4);
    assert_ptr_equal(code + 5 + rel, to->cache_pc);
    unlink_fragment(from);
    assert_false(e->linked);
    assert_int_equal(to->incoming, 0);
    cache_serial_release(from->serial);
    free(from);
}

/* An exit to code translated already is made linked, without a stub: it
 * gets one, in the room its chunk kept, when it is unlinked, and one
 * whose target is gone at once. */
static void test_link_at_birth(void **state)
{
    (void)state;
    struct fragment *to = fake_fragment(0x1100, 1);
    struct cache_chunk *c = cache_chunk_near((uint64_t)&test_link_at_birth, 4096);
    uint8_t *code = cache_chunk_cursor(c);
    cache_chunk_commit(c, code + 64, 0);
    struct fragment *from = calloc(1, fragment_alloc_size(2, 0, 0, false, 0));
    from->guest_pc = 0x2100;
    from->cache_pc = code;
    from->n_exits = 2;
    cache_serial_new(from);
    struct exit_record *e = fragment_exits(from);
    e[0] = (struct exit_record){.kind = EXIT_DIRECT, .branch_off = 1, .slot = 1};
    e[1] = (struct exit_record){.kind = EXIT_CALL, .branch_off = 6, .slot = 2};
    exit_set_target(&e[0], 0x1100);
    exit_set_target(&e[1], 0x1200); /* gone by the time it is linked */
    code[0] = code[5] = 0xe9;
    int32_t rel = (int32_t)(to->cache_pc - (code + 5));
    memcpy(code + 1, &rel, 4);
    cache_chunk_reserve_stubs(c, 2);
    cache_link_at_birth(&e[0], to);
    cache_link_at_birth(&e[1], NULL);
    assert_true(e[0].linked);
    assert_null(exit_stub(&e[0]));
    assert_int_equal(to->incoming, exit_id(&e[0]));
    uint8_t expect[STUB_SIZE];
    /* the other one has its stub already, and its branch goes there */
    assert_false(e[1].linked);
    uint8_t *stub1 = exit_stub(&e[1]);
    assert_non_null(stub1);
    write_exit_stub(expect, stub1, exit_id(&e[1]));
    assert_memory_equal(stub1, expect, STUB_SIZE);
    memcpy(&rel, code + 6, 4);
    assert_ptr_equal(code + 10 + rel, stub1);
    /* unlinked: the first gets a stub too, with its id */
    unlink_fragment(to);
    assert_false(e[0].linked);
    uint8_t *stub0 = exit_stub(&e[0]);
    assert_non_null(stub0);
    assert_ptr_not_equal(stub0, stub1);
    write_exit_stub(expect, stub0, exit_id(&e[0]));
    assert_memory_equal(stub0, expect, STUB_SIZE);
    memcpy(&rel, code + 1, 4);
    assert_ptr_equal(code + 5 + rel, stub0);
    assert_ptr_equal(exit_by_id(exit_id(&e[0])), &e[0]);
    /* and is linked again like any other */
    cache_link(&e[0], to);
    memcpy(&rel, code + 1, 4);
    assert_ptr_equal(code + 5 + rel, to->cache_pc);
    assert_ptr_equal(exit_stub(&e[0]), stub0);
    unlink_fragment(to);
    cache_free_fragment(from);
    free(from);
    free(to);
}

/* An exit record keeps its target as a 32-bit offset from its fragment's
 * guest pc; a target beyond that reach is kept aside, and both read back
 * whole. */
static void test_exit_targets(void **state)
{
    (void)state;
    struct fragment *f = calloc(1, fragment_alloc_size(3, 0, 0, false, 0));
    f->guest_pc = 0x400000;
    f->n_exits = 3;
    struct exit_record *e = fragment_exits(f);
    for (int i = 0; i < 3; i++)
        e[i].slot = (uint8_t)(i + 1);
    exit_set_target(&e[0], 0x3ff000);                 /* behind */
    exit_set_target(&e[1], 0x7f1234567890);           /* another library, far away */
    exit_set_target(&e[2], 0x400000 + 0x7fffffffull); /* the last one in reach */
    assert_false(e[0].far_target);
    assert_true(e[1].far_target);
    assert_false(e[2].far_target);
    assert_int_equal(exit_target(&e[0]), 0x3ff000);
    assert_int_equal(exit_target(&e[1]), 0x7f1234567890);
    assert_int_equal(exit_target(&e[2]), 0x400000 + 0x7fffffffull);
    cache_free_fragment(f); /* takes its far target out of the side table */
    free(f);
    struct exit_record lone = {.slot = 0};
    assert_int_equal(exit_target(&lone), 0);
}

/* Fragment records come from their chunk: zeroed, 16-byte aligned, apart,
 * one larger than a block too. */
static void test_record_alloc(void **state)
{
    (void)state;
    struct cache_chunk *c = cache_chunk_near((uint64_t)&test_record_alloc, 64);
    uint8_t *prev = NULL;
    for (int i = 0; i < 2000; i++) { /* several blocks' worth */
        size_t size = 40 + 16 * (size_t)(i % 7) + 2 * (size_t)(i % 13);
        uint8_t *r = cache_record_alloc(c, size);
        assert_int_equal((uintptr_t)r % 8, 0); /* a fragment's alignment */
        for (size_t k = 0; k < size; k++)
            assert_int_equal(r[k], 0);
        memset(r, 0xa5, size);
        assert_true(!prev || r >= prev + 40 || r + size <= prev);
        prev = r;
    }
    uint8_t *big = cache_record_alloc(c, 100000);
    assert_int_equal(big[99999], 0);
    big[99999] = 1;
}

/* Serial numbers name fragments in exit stubs: distinct while in use,
 * reused once freed. */
static void test_serials(void **state)
{
    (void)state;
    struct fragment *a = fake_fragment(0x5000, 1), *b = fake_fragment(0x5010, 1);
    uint32_t sa = cache_serial_new(a), sb = cache_serial_new(b);
    assert_int_not_equal(sa, 0);
    assert_int_not_equal(sa, sb);
    assert_int_equal(a->serial, sa);
    assert_ptr_equal(cache_fragment_by_serial(sa), a);
    assert_ptr_equal(cache_fragment_by_serial(sb), b);
    cache_serial_release(sa);
    struct fragment *c = fake_fragment(0x5020, 1);
    assert_int_equal(cache_serial_new(c), sa);
    assert_ptr_equal(cache_fragment_by_serial(sa), c);
    cache_serial_release(sb);
    cache_serial_release(sa);
    free(a);
    free(b);
    free(c);
}

static bool generation_one(uint64_t generation, void *arg)
{
    (void)arg;
    return generation == 1;
}

static bool no_generation(uint64_t generation, void *arg)
{
    (void)generation, (void)arg;
    return false;
}

/* Retired chunks keep their fragments and are freed by generation: the
 * ones still in use stay mapped, the others go, fragments with them. */
/* The map through growth (1024 slots, then doubling at 3/4) and
 * removal: u64map_at() finds a key put before, puts a missing one as 0,
 * and what is written through it is what get reads. */
static void test_u64map(void **state)
{
    (void)state;
    struct u64map m = {0};
    for (uint64_t k = 1; k <= 5000; k++)
        u64map_put(&m, k * 4096, k);
    assert_int_equal(m.count, 5000);
    for (uint64_t k = 1; k <= 5000; k += 7) {
        uint64_t *v = u64map_at(&m, k * 4096);
        assert_int_equal(*v, k);
        *v = k + 1;
    }
    assert_int_equal(m.count, 5000);
    for (uint64_t k = 5001; k <= 6000; k++) /* new keys: 0, then set; the map grows */
        *u64map_at(&m, k * 4096) += k;
    assert_int_equal(m.count, 6000);
    for (uint64_t k = 1; k <= 6000; k++) {
        uint64_t v = 0;
        assert_true(u64map_get(&m, k * 4096, &v));
        assert_int_equal(v, k <= 5000 && (k - 1) % 7 == 0 ? k + 1 : k);
    }
    for (uint64_t k = 2; k <= 6000; k += 2)
        assert_true(u64map_remove(&m, k * 4096));
    assert_int_equal(m.count, 3000);
    for (uint64_t k = 1; k <= 6000; k++)
        assert_int_equal(u64map_get(&m, k * 4096, NULL), k % 2 == 1);
    assert_false(u64map_get(&m, 12345, NULL));
    u64map_clear(&m);
    assert_int_equal(m.count, 0);
    free(m.slots);
}

static void test_retired_generations(void **state)
{
    (void)state;
    uint64_t pc = (uint64_t)&test_retired_generations;
    cache_flush_all(false, 1); /* start from empty chunks */
    struct fragment *old = fake_fragment(0x6000, 1);
    cache_insert(old);
    uint64_t old_code = (uint64_t)old->cache_pc;
    cache_flush_all(true, 1); /* retired by flush 1, fragment and all */
    assert_true(cache_owns(old_code, 1));
    assert_int_equal(cache_retired_generation(old_code), 1);
    assert_true(old->dead);
    struct fragment *newer = fake_fragment(0x7000, 1);
    cache_insert(newer);
    uint64_t newer_code = (uint64_t)newer->cache_pc;
    assert_int_equal(cache_retired_generation(newer_code), 0); /* live */
    cache_flush_all(true, 2);
    assert_int_equal(cache_retired_generation(newer_code), 2);
    cache_free_retired(generation_one, NULL); /* only flush 1's still in use */
    assert_true(cache_owns(old_code, 1));
    assert_false(cache_owns(newer_code, 1));
    assert_true(cache_has_retired());
    cache_free_retired(no_generation, NULL);
    assert_false(cache_owns(old_code, 1));
    assert_false(cache_has_retired());
    assert_non_null(cache_chunk_near(pc, 4096)); /* room again near the code */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_is_near),       cmocka_unit_test(test_chunk_cold_code),
        cmocka_unit_test(test_table_many),          cmocka_unit_test(test_table_same_low_half),
        cmocka_unit_test(test_link_near),           cmocka_unit_test(test_link_far),
        cmocka_unit_test(test_exit_targets),        cmocka_unit_test(test_record_alloc),
        cmocka_unit_test(test_link_at_birth),       cmocka_unit_test(test_serials),
        cmocka_unit_test(test_retired_generations), cmocka_unit_test(test_u64map),
    };
    return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
