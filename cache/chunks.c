/* Code-cache memory. Chunks are placed within +-1.5 GiB of the guest code
 * they serve, so that a copied rip-relative operand only needs its disp32
 * rebased (DESIGN.md decision 4). Fragments are bump-allocated upwards from
 * a chunk's base; their exit stubs, which run only until the exit is linked,
 * downwards from its end, so that hot code is not spread out by cold stubs
 * (half of cc1's cache was stubs, between the bodies). A full chunk,
 * or a cache that reached --cache-size, makes the translator flush the whole
 * cache (a flush is simple and, unlike evicting single fragments, needs no
 * per-fragment bookkeeping of who links to whom across threads). After a flush with other
 * threads possibly still inside, chunks are retired rather than reused. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache/cache_internal.h"
#include "runtime/runtime.h"
#include "translator/translator.h" /* the exit stubs' format */

#define MAX_CHUNK_SIZE (64ul << 20)
#define MAX_CHUNKS 64
#define REACH (1536ul << 20) /* chunk-to-guest distance kept below 2 GiB */

/* Fragment records (struct fragment, its exits and pc map) of a chunk's
 * fragments, bump-allocated: they live exactly as long as the chunk's
 * code (a flush frees both), and malloc's header and rounding cost cc1
 * 1.6 MB over its 93 000 records. */
#define RECORD_BLOCK_SIZE (64u << 10)
struct record_block {
    struct record_block *next;
    size_t used, size;
    _Alignas(16) uint8_t data[];
};

struct cache_chunk {
    uint8_t *base, *cursor, *end;
    struct record_block *records;
    size_t stub_reserve; /* kept free below cold for stubs made late (link.c) */
    uint8_t *cold;       /* stubs live in [cold, end) */
    uint32_t *frags;     /* by serial, in address order: bump allocation keeps it sorted */
    size_t n_frags, cap_frags;
    uint64_t generation; /* retired: the flush that retired it (cache_flush_all) */
};

static struct cache_chunk chunks[MAX_CHUNKS];
static int n_chunks;
/* Grows as needed: reusing a chunk that another thread may still run in
 * is never an option, however long that thread stays in the cache. */
static struct cache_chunk *retired;
static int n_retired, cap_retired;

/* The last STUB_TAIL_SIZE bytes of a chunk hold the exit stubs' shared
 * tail (write_stub_tail()); its cold code grows down from there. */
static uint8_t *cold_start(uint8_t *end)
{
    return end - STUB_TAIL_SIZE;
}

static bool within_reach(const struct cache_chunk *c, uint64_t pc)
{
    uint64_t lo = (uint64_t)c->base, hi = (uint64_t)c->end;
    uint64_t far = pc > lo ? pc - lo : lo - pc;
    uint64_t far2 = pc > hi ? pc - hi : hi - pc;
    return far < REACH && far2 < REACH;
}

/* 64 MiB, or with --cache-size the bound rounded up to 1 MiB: after a
 * flush with other threads inside, retired chunks stay mapped beside new
 * ones, and small chunks leave room for many near the same code. */
static uint64_t chunk_size(void)
{
    uint64_t bound = (dbo_opts.cache_size + (1ul << 20) - 1) & ~((1ul << 20) - 1);
    return bound && bound < MAX_CHUNK_SIZE ? bound : MAX_CHUNK_SIZE;
}

static bool map_chunk_near(uint64_t pc, struct cache_chunk *out)
{
    /* Try hints at growing distance below and above pc; the kernel refuses
     * MAP_FIXED_NOREPLACE over anything already mapped. */
    uint64_t size = chunk_size();
    uint64_t stride = size < (16ul << 20) ? (16ul << 20) : 2 * size;
    for (int64_t step = 1; step * stride < REACH - size; step++) {
        for (int dir = -1; dir <= 1; dir += 2) {
            int64_t hint = (int64_t)(pc & ~(size - 1)) + dir * step * (int64_t)stride;
            if (hint < (int64_t)(16ul << 20) || hint > (int64_t)(0x7ffffffff000 - size))
                continue;
            void *m =
                mmap((void *)hint, size, PROT_READ | PROT_WRITE | PROT_EXEC,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
            if (m == MAP_FAILED)
                continue;
            uint8_t *end = (uint8_t *)m + size;
            *out =
                (struct cache_chunk){.base = m, .cursor = m, .end = end, .cold = cold_start(end)};
            write_stub_tail(cold_start(end));
            if (within_reach(out, pc))
                return true;
            munmap(m, size);
        }
    }
    return false;
}

struct cache_chunk *cache_chunk_near(uint64_t guest_pc, size_t bytes)
{
    if (dbo_opts.cache_size && cache_bytes_used() + bytes > dbo_opts.cache_size)
        return NULL; /* --cache-size reached: the caller flushes */
    bool any_near = false;
    for (int i = 0; i < n_chunks; i++) {
        if (!within_reach(&chunks[i], guest_pc))
            continue;
        any_near = true;
        if ((size_t)(chunks[i].cold - chunks[i].cursor) >= bytes + chunks[i].stub_reserve)
            return &chunks[i];
    }
    if (any_near || n_chunks == MAX_CHUNKS)
        return NULL; /* full: the caller flushes and tries again */
    if (!map_chunk_near(guest_pc, &chunks[n_chunks]))
        return NULL;
    return &chunks[n_chunks++];
}

uint8_t *cache_chunk_cursor(struct cache_chunk *chunk)
{
    return chunk->cursor;
}

uint8_t *cache_chunk_cold(struct cache_chunk *chunk)
{
    return chunk->cold;
}

void cache_chunk_commit(struct cache_chunk *chunk, uint8_t *new_cursor, size_t cold_bytes)
{
    /* Keep fragments 16-byte aligned: entries are branch targets. */
    chunk->cursor = (uint8_t *)(((uintptr_t)new_cursor + 15) & ~(uintptr_t)15);
    chunk->cold -= cold_bytes;
}

static bool overlaps(const struct cache_chunk *c, uint64_t addr, uint64_t len)
{
    return addr < (uint64_t)c->end && addr + len > (uint64_t)c->base;
}

bool cache_owns(uint64_t addr, uint64_t len)
{
    for (int i = 0; i < n_chunks; i++)
        if (overlaps(&chunks[i], addr, len))
            return true;
    for (int i = 0; i < n_retired; i++)
        if (overlaps(&retired[i], addr, len))
            return true;
    return false;
}

size_t cache_bytes_used(void)
{
    size_t used = 0;
    for (int i = 0; i < n_chunks; i++)
        used += (chunks[i].cursor - chunks[i].base) + (cold_start(chunks[i].end) - chunks[i].cold);
    return used;
}

static struct cache_chunk *chunk_of(uint64_t cache_pc)
{
    for (int i = 0; i < n_chunks; i++)
        if (overlaps(&chunks[i], cache_pc, 1))
            return &chunks[i];
    return NULL;
}

uint8_t *cache_stub_tail(const uint8_t *stub)
{
    for (int i = 0; i < n_chunks; i++)
        if (overlaps(&chunks[i], (uint64_t)stub, 1))
            return cold_start(chunks[i].end);
    for (int i = 0; i < n_retired; i++)
        if (overlaps(&retired[i], (uint64_t)stub, 1))
            return cold_start(retired[i].end);
    dbo_fatal("exit stub at %p is outside the code cache", (const void *)stub);
}

struct fragment *cache_fragment_at(uint64_t cache_pc)
{
    struct cache_chunk *c = chunk_of(cache_pc);
    if (!c || !c->n_frags)
        return NULL;
    size_t lo = 0, hi = c->n_frags;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((uint64_t)cache_fragment_by_serial(c->frags[mid])->cache_pc <= cache_pc)
            lo = mid;
        else
            hi = mid;
    }
    struct fragment *f = cache_fragment_by_serial(c->frags[lo]);
    if (cache_pc < (uint64_t)f->cache_pc || cache_pc >= (uint64_t)f->cache_pc + f->cache_size)
        return NULL;
    return f;
}

void chunk_add_fragment(struct fragment *frag)
{
    struct cache_chunk *c = chunk_of((uint64_t)frag->cache_pc);
    if (c->n_frags == c->cap_frags) {
        c->cap_frags = c->cap_frags ? c->cap_frags + c->cap_frags / 2 : 1024;
        c->frags = realloc(c->frags, c->cap_frags * sizeof *c->frags);
        if (!c->frags)
            dbo_fatal("out of memory for the cache's address index");
    }
    if (!frag->serial) /* the index names it by it: 4 bytes, not a pointer's 8 */
        cache_serial_new(frag);
    c->frags[c->n_frags++] = frag->serial;
}

void cache_chunk_reserve_stubs(struct cache_chunk *chunk, uint32_t n)
{
    chunk->stub_reserve += (size_t)n * STUB_SIZE;
}

uint8_t *cache_stub_space(uint64_t cache_pc)
{
    struct cache_chunk *c = chunk_of(cache_pc);
    if (!c || c->stub_reserve < STUB_SIZE)
        dbo_fatal("no room kept for an exit stub near %#lx", (unsigned long)cache_pc);
    c->stub_reserve -= STUB_SIZE;
    c->cold -= STUB_SIZE;
    return c->cold;
}

void *cache_record_alloc(struct cache_chunk *c, size_t size)
{
    size = (size + 7) & ~(size_t)7; /* records hold nothing wider than 8 bytes */
    struct record_block *b = c->records;
    if (!b || b->size - b->used < size) {
        size_t cap = size > RECORD_BLOCK_SIZE ? size : RECORD_BLOCK_SIZE;
        b = malloc(sizeof *b + cap);
        if (!b)
            dbo_fatal("out of memory for fragment records");
        *b = (struct record_block){.next = c->records, .size = cap};
        c->records = b;
    }
    void *r = b->data + b->used;
    b->used += size;
    return memset(r, 0, size);
}

static void free_records(struct cache_chunk *c)
{
    for (struct record_block *b = c->records, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    c->records = NULL;
}

/* After a full flush: the fragments are gone; reuse or retire the memory. */
void cache_chunks_reset(bool retire, uint64_t generation)
{
    if (retire) {
        /* their fragments stay, freed with them (cache_free_retired) */
        if (n_retired + n_chunks > cap_retired) {
            cap_retired = 2 * (n_retired + n_chunks);
            retired = realloc(retired, cap_retired * sizeof *retired);
        }
        for (int i = 0; i < n_chunks; i++)
            chunks[i].generation = generation;
        memcpy(retired + n_retired, chunks, n_chunks * sizeof *chunks);
        n_retired += n_chunks;
        memset(chunks, 0, sizeof chunks);
        n_chunks = 0;
    } else {
        for (int i = 0; i < n_chunks; i++) {
            free_records(&chunks[i]);
            chunks[i].stub_reserve = 0;
            chunks[i].n_frags = 0;
            chunks[i].cursor = chunks[i].base;
            chunks[i].cold = cold_start(chunks[i].end);
        }
    }
}

bool cache_has_retired(void)
{
    return n_retired > 0;
}

uint64_t cache_retired_generation(uint64_t cache_pc)
{
    for (int i = 0; i < n_retired; i++)
        if (overlaps(&retired[i], cache_pc, 1))
            return retired[i].generation;
    return 0;
}

void cache_free_retired(bool (*in_use)(uint64_t generation, void *arg), void *arg)
{
    int kept = 0;
    for (int i = 0; i < n_retired; i++) {
        struct cache_chunk *c = &retired[i];
        if (in_use(c->generation, arg)) {
            retired[kept++] = *c;
            continue;
        }
        for (size_t k = 0; k < c->n_frags; k++)
            cache_free_fragment(cache_fragment_by_serial(c->frags[k]));
        munmap(c->base, c->end - c->base);
        free(c->frags);
        free_records(c);
    }
    n_retired = kept;
}
