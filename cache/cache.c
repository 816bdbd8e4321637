/* Code-cache memory and the guest-PC -> fragment table.
 *
 * Cache memory comes in chunks placed within +-1.5 GiB of the guest code
 * they serve, so that a copied rip-relative operand only needs its disp32
 * rebased (DESIGN.md decision 4). Fragments are bump-allocated; when a chunk
 * is full the whole cache is flushed and rebuilt on demand. */
#define XXH_INLINE_ALL
#include "cache/cache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "runtime/runtime.h"
#include "translator/translator.h"

#define CHUNK_SIZE (64ul << 20)
#define MAX_CHUNKS 64
#define REACH (1536ul << 20) /* chunk-to-guest distance kept below 2 GiB */
#define PAGE 4096ul

struct cache_chunk {
    uint8_t *base, *cursor, *end;
    struct fragment **frags; /* in address order: bump allocation keeps it sorted */
    size_t n_frags, cap_frags;
};

static struct cache_chunk chunks[MAX_CHUNKS];
static int n_chunks;
static struct cache_chunk retired[MAX_CHUNKS];
static int n_retired;

static bool within_reach(const struct cache_chunk *c, uint64_t pc)
{
    uint64_t lo = (uint64_t)c->base, hi = (uint64_t)c->end;
    uint64_t far = pc > lo ? pc - lo : lo - pc;
    uint64_t far2 = pc > hi ? pc - hi : hi - pc;
    return far < REACH && far2 < REACH;
}

static bool map_chunk_near(uint64_t pc, struct cache_chunk *out)
{
    /* Try hints at growing distance below and above pc; the kernel refuses
     * MAP_FIXED_NOREPLACE over anything already mapped. */
    for (int64_t step = 1; step <= 10; step++) {
        for (int dir = -1; dir <= 1; dir += 2) {
            int64_t hint = (int64_t)(pc & ~(CHUNK_SIZE - 1)) + dir * step * (int64_t)(128ul << 20);
            if (hint < (int64_t)(16ul << 20) || hint > (int64_t)(0x7ffffffff000 - CHUNK_SIZE))
                continue;
            void *m = mmap((void *)hint, CHUNK_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
            if (m == MAP_FAILED)
                continue;
            *out = (struct cache_chunk){.base = m, .cursor = m, .end = (uint8_t *)m + CHUNK_SIZE};
            if (within_reach(out, pc))
                return true;
            munmap(m, CHUNK_SIZE);
        }
    }
    return false;
}

struct cache_chunk *cache_chunk_near(uint64_t guest_pc, size_t bytes)
{
    bool any_near = false;
    for (int i = 0; i < n_chunks; i++) {
        if (!within_reach(&chunks[i], guest_pc))
            continue;
        any_near = true;
        if ((size_t)(chunks[i].end - chunks[i].cursor) >= bytes)
            return &chunks[i];
    }
    if (any_near || n_chunks == MAX_CHUNKS)
        return NULL; /* full: the caller flushes and tries again */
    if (!map_chunk_near(guest_pc, &chunks[n_chunks]))
        return NULL;
    return &chunks[n_chunks++];
}

uint8_t *cache_chunk_cursor(struct cache_chunk *chunk) { return chunk->cursor; }

void cache_chunk_commit(struct cache_chunk *chunk, uint8_t *new_cursor)
{
    /* Keep fragments 16-byte aligned: entries are branch targets. */
    chunk->cursor = (uint8_t *)(((uintptr_t)new_cursor + 15) & ~(uintptr_t)15);
}

bool cache_owns(uint64_t addr, uint64_t len)
{
    for (int i = 0; i < n_chunks; i++)
        if (addr < (uint64_t)chunks[i].end && addr + len > (uint64_t)chunks[i].base)
            return true;
    for (int i = 0; i < n_retired; i++)
        if (addr < (uint64_t)retired[i].end && addr + len > (uint64_t)retired[i].base)
            return true;
    return false;
}

bool cache_has_retired(void) { return n_retired > 0; }

void cache_free_retired(void)
{
    for (int i = 0; i < n_retired; i++) {
        munmap(retired[i].base, retired[i].end - retired[i].base);
        free(retired[i].frags);
    }
    n_retired = 0;
}

size_t cache_bytes_used(void)
{
    size_t used = 0;
    for (int i = 0; i < n_chunks; i++)
        used += chunks[i].cursor - chunks[i].base;
    return used;
}

/* ---- guest pc -> fragment: open addressing, linear probing ---- */

static struct fragment **table;
static size_t table_cap, table_count;

static size_t slot_of(uint64_t pc, size_t cap)
{
    return XXH3_64bits(&pc, sizeof pc) & (cap - 1);
}

struct fragment *cache_lookup(uint64_t guest_pc)
{
    if (!table_cap)
        return NULL;
    for (size_t i = slot_of(guest_pc, table_cap);; i = (i + 1) & (table_cap - 1)) {
        struct fragment *f = table[i];
        if (!f)
            return NULL;
        if (f->guest_pc == guest_pc)
            return f;
    }
}

static void table_put(struct fragment **t, size_t cap, struct fragment *frag)
{
    size_t i = slot_of(frag->guest_pc, cap);
    while (t[i])
        i = (i + 1) & (cap - 1);
    t[i] = frag;
}

/* Pages that hold translated code, as a second hash set of page numbers. */
static uint64_t *code_pages;
static size_t pages_cap, pages_count;

static void pages_put(uint64_t *set, size_t cap, uint64_t page)
{
    size_t i = XXH3_64bits(&page, sizeof page) & (cap - 1);
    while (set[i] && set[i] != page)
        i = (i + 1) & (cap - 1);
    if (!set[i])
        set[i] = page;
}

static bool pages_has(uint64_t page)
{
    if (!pages_cap)
        return false;
    for (size_t i = XXH3_64bits(&page, sizeof page) & (pages_cap - 1);; i = (i + 1) & (pages_cap - 1)) {
        if (!code_pages[i])
            return false;
        if (code_pages[i] == page)
            return true;
    }
}

static void pages_add(uint64_t page)
{
    if (pages_has(page))
        return;
    if (2 * (pages_count + 1) > pages_cap) {
        size_t cap = pages_cap ? 2 * pages_cap : 1024;
        uint64_t *set = calloc(cap, sizeof *set);
        for (size_t i = 0; i < pages_cap; i++)
            if (code_pages[i])
                pages_put(set, cap, code_pages[i]);
        free(code_pages);
        code_pages = set;
        pages_cap = cap;
    }
    pages_put(code_pages, pages_cap, page);
    pages_count++;
}

static struct cache_chunk *chunk_of(uint64_t cache_pc)
{
    for (int i = 0; i < n_chunks; i++)
        if (cache_pc >= (uint64_t)chunks[i].base && cache_pc < (uint64_t)chunks[i].end)
            return &chunks[i];
    return NULL;
}

struct fragment *cache_fragment_at(uint64_t cache_pc)
{
    struct cache_chunk *c = chunk_of(cache_pc);
    if (!c || !c->n_frags)
        return NULL;
    size_t lo = 0, hi = c->n_frags;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((uint64_t)c->frags[mid]->cache_pc <= cache_pc)
            lo = mid;
        else
            hi = mid;
    }
    struct fragment *f = c->frags[lo];
    if (cache_pc < (uint64_t)f->cache_pc || cache_pc >= (uint64_t)f->cache_pc + f->cache_size)
        return NULL;
    return f;
}

void cache_insert(struct fragment *frag)
{
    struct cache_chunk *c = chunk_of((uint64_t)frag->cache_pc);
    if (c->n_frags == c->cap_frags) {
        c->cap_frags = c->cap_frags ? 2 * c->cap_frags : 1024;
        c->frags = realloc(c->frags, c->cap_frags * sizeof *c->frags);
    }
    c->frags[c->n_frags++] = frag;
    if (2 * (table_count + 1) > table_cap) {
        size_t cap = table_cap ? 2 * table_cap : 4096;
        struct fragment **t = calloc(cap, sizeof *t);
        for (size_t i = 0; i < table_cap; i++)
            if (table[i])
                table_put(t, cap, table[i]);
        free(table);
        table = t;
        table_cap = cap;
    }
    table_put(table, table_cap, frag);
    table_count++;
    for (uint64_t pg = frag->guest_pc / PAGE; pg <= (frag->guest_end - 1) / PAGE; pg++)
        pages_add(pg + 1); /* +1: zero marks an empty slot */
}

bool cache_range_has_code(uint64_t start, uint64_t len)
{
    if (!pages_count || !len)
        return false;
    uint64_t first = start / PAGE, last = (start + len - 1) / PAGE;
    if (last - first < pages_cap) {
        for (uint64_t pg = first; pg <= last; pg++)
            if (pages_has(pg + 1))
                return true;
        return false;
    }
    for (size_t i = 0; i < pages_cap; i++)
        if (code_pages[i] && code_pages[i] - 1 >= first && code_pages[i] - 1 <= last)
            return true;
    return false;
}

static bool fits_rel32_addr(const uint8_t *from_end, const uint8_t *target)
{
    int64_t d = target - from_end;
    return d == (int32_t)d;
}

void cache_link(struct exit_record *exit, struct fragment *to)
{
    if (exit->branch_rel32 && fits_rel32_addr(exit->branch_rel32 + 4, to->cache_pc)) {
        int32_t d = (int32_t)(to->cache_pc - (exit->branch_rel32 + 4));
        __atomic_store_n((int32_t *)exit->branch_rel32, d, __ATOMIC_RELEASE);
    } else if (exit->stub) {
        /* Too far for rel32: turn the stub into an absolute jump. */
        uint8_t far[14] = {0xff, 0x25, 0, 0, 0, 0};
        uint64_t target = (uint64_t)to->cache_pc;
        memcpy(far + 6, &target, 8);
        memcpy(exit->stub, far, sizeof far);
    } else {
        return;
    }
    exit->linked = true;
}

void cache_flush_all(bool retire)
{
    for (size_t i = 0; i < table_cap; i++) {
        if (!table[i])
            continue;
        free(table[i]->exits);
        free(table[i]->pc_map);
        free(table[i]);
        table[i] = NULL;
    }
    table_count = 0;
    memset(code_pages, 0, pages_cap * sizeof *code_pages);
    pages_count = 0;
    for (int i = 0; i < n_chunks; i++)
        chunks[i].n_frags = 0;
    if (retire && n_retired + n_chunks <= MAX_CHUNKS) {
        memcpy(retired + n_retired, chunks, n_chunks * sizeof *chunks);
        n_retired += n_chunks;
        n_chunks = 0;
    } else {
        for (int i = 0; i < n_chunks; i++)
            chunks[i].cursor = chunks[i].base;
    }
    dbo_stats.flushes++;
}
