/* Fragments by serial number and guest pc (the table itself is in
 * fragment_table.c), the set of guest pages holding
 * translated code, invalidation of a guest range, and the full flush. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache/cache_internal.h"
#include "runtime/runtime.h"
#include "translator/translator.h"

struct u64map code_pages;
static struct u64map counters;      /* trace head guest pc -> its counter */
static struct u64map far_targets;   /* exit record -> its target, if far (cache.h) */
static struct u64map late_stubs;    /* exit record -> the stub made for it (link.c) */
static struct u64map inner_entries; /* cache pc -> the live inner entry there (cache.h) */

/* Invalidated fragments: unreachable, but their code and exit records may
 * still be in use by a thread that was inside; freed at the next flush. */
static struct fragment **dead;
static size_t n_dead, cap_dead;
/* A fragment of a chunk being retired: other threads may still pass its
 * stubs; freed with its chunk (cache_free_retired). */
static void keep_retired(struct fragment *f)
{
    f->dead = true;        /* its exits must not be linked any more */
    f->indexed = false;    /* the flush empties the page index */
    if (f->is_inner_entry) /* not among its chunk's, which cache_free_retired() frees */
        cache_free_fragment(f);
}

/* Fragments by serial number; a free number's slot holds the next free
 * one, shifted left once and tagged with bit 0. */
static uintptr_t *by_serial;
static uint32_t n_serials = 1, cap_serials; /* 0 is no serial */
static uintptr_t free_serials;              /* tagged like a free slot; 0: none */
#define MAX_SERIALS (1u << 23)              /* an exit's id is serial << 8 | index */

uint32_t cache_serial_new(struct fragment *frag)
{
    uint32_t serial;
    if (free_serials) {
        serial = (uint32_t)(free_serials >> 1);
        free_serials = by_serial[serial];
    } else {
        if (n_serials == MAX_SERIALS)
            dbo_fatal("more than %u fragments at once", MAX_SERIALS - 1);
        if (n_serials >= cap_serials) {
            cap_serials = cap_serials ? cap_serials + cap_serials / 2 : 4096;
            by_serial = realloc(by_serial, cap_serials * sizeof *by_serial);
            if (!by_serial)
                dbo_fatal("out of memory for fragment serial numbers");
        }
        serial = n_serials++;
    }
    by_serial[serial] = (uintptr_t)frag;
    frag->serial = serial;
    return serial;
}

void cache_serial_release(uint32_t serial)
{
    if (!serial)
        return;
    by_serial[serial] = free_serials;
    free_serials = (uintptr_t)serial << 1 | 1;
}

struct fragment *cache_fragment_by_serial(uint32_t serial)
{
    if (!serial || serial >= n_serials || (by_serial[serial] & 1))
        dbo_fatal("no fragment has serial number %u", serial);
    return (struct fragment *)by_serial[serial];
}

struct fragment *cache_lookup(uint64_t guest_pc)
{
    return fragment_table_get(guest_pc);
}

/* code_pages maps page + 1 to the head of a list of the fragments that
 * cover that page, so invalidating a page touches only its own fragments.
 * The list's nodes are indexes into a pool (0: none), each naming its
 * fragment by serial number: 8 bytes a node, where pointers made them 16
 * (1.5 MB for cc1's 95 000). */
struct page_node {
    uint32_t serial;
    uint32_t next;
};

/* The pool: blocks of NODES_PER_BLOCK nodes; node 0 is never used. A
 * fragment finds its nodes on its pages' lists. Emptied by a flush. */
#define NODES_PER_BLOCK 4096
static uint32_t free_nodes;
static struct page_node **node_blocks;
static size_t n_node_blocks, cap_node_blocks;

static struct page_node *node_at(uint32_t index)
{
    return &node_blocks[index / NODES_PER_BLOCK][index % NODES_PER_BLOCK];
}

/* Chains block `b`'s nodes onto the free list, lowest first. */
static void free_block(size_t b)
{
    struct page_node *block = node_blocks[b];
    uint32_t first = (uint32_t)(b * NODES_PER_BLOCK);
    for (uint32_t k = NODES_PER_BLOCK - 1; k > 0; k--)
        block[k - 1].next = first + k;
    block[NODES_PER_BLOCK - 1].next = free_nodes;
    free_nodes = first ? first : block[0].next; /* node 0 is never used */
}

static uint32_t new_page_node(void)
{
    if (!free_nodes) {
        if (n_node_blocks == cap_node_blocks) {
            cap_node_blocks = cap_node_blocks ? 2 * cap_node_blocks : 16;
            node_blocks = realloc(node_blocks, cap_node_blocks * sizeof *node_blocks);
        }
        struct page_node *block = malloc(NODES_PER_BLOCK * sizeof *block);
        if (!node_blocks || !block || n_node_blocks >= UINT32_MAX / NODES_PER_BLOCK)
            dbo_fatal("out of memory for the page index");
        node_blocks[n_node_blocks++] = block;
        free_block(n_node_blocks - 1);
    }
    uint32_t index = free_nodes;
    free_nodes = node_at(index)->next;
    return index;
}

static void free_page_node(uint32_t index)
{
    node_at(index)->next = free_nodes;
    free_nodes = index;
}

/* Every node back to the pool (the flush empties the index). */
static void reset_page_nodes(void)
{
    free_nodes = 0;
    for (size_t b = n_node_blocks; b-- > 0;)
        free_block(b);
}

/* An inner entry stands for the fragment it enters where invalidation is
 * concerned: it is on that one's pages and dies with it (a write may hit
 * the fragment before the entry's own first byte). */
static const struct fragment *code_owner(const struct fragment *f)
{
    return f->is_inner_entry ? inner_entry_tail(f)->into : f;
}

size_t fragment_pages(const struct fragment *f, uint64_t *pages)
{
    f = code_owner(f);
    size_t n = 0;
    for (uint32_t r = 0; r < fragment_n_ranges(f); r++) {
        struct guest_range g = fragment_range(f, r);
        for (uint64_t pg = g.start / PAGE; pg <= (g.end - 1) / PAGE; pg++) {
            /* insertion sort from the end, duplicates dropped: a few pages,
             * mostly in order already (a fragment has one range) */
            size_t at = n;
            while (at > 0 && pages[at - 1] > pg)
                at--;
            if (at > 0 && pages[at - 1] == pg)
                continue;
            if (n == MAX_FRAGMENT_PAGES)
                dbo_fatal("a fragment spans more than %d guest pages", MAX_FRAGMENT_PAGES);
            if (at < n)
                memmove(pages + at + 1, pages + at, (n - at) * sizeof *pages);
            pages[at] = pg;
            n++;
        }
    }
    return n;
}

/* Adds frag to the page index. */
static void index_pages(struct fragment *frag)
{
    uint64_t pages[MAX_FRAGMENT_PAGES];
    size_t n = fragment_pages(frag, pages);
    for (size_t i = 0; i < n; i++) {
        uint32_t node = new_page_node();
        uint64_t *head = u64map_at(&code_pages, pages[i] + 1); /* +1: key zero is empty */
        *node_at(node) = (struct page_node){frag->serial, (uint32_t)*head};
        *head = node;
    }
    frag->indexed = true;
}

/* Which fragment inner entries may enter runs through each 32-byte block
 * of guest code: the last one made, by serial number, in a direct-mapped
 * array (4 MiB of code before two blocks share a slot). Never cleared: a
 * slot is only a guess, checked against the fragment it names (its page
 * list would be exact, but walking one cost as much as translating). */
#define COVER_BLOCK_SHIFT 5
#define COVER_SLOTS (1u << 17)
static uint32_t *cover;
/* Its pages written so far: a lookup does not read one that was not (the
 * kernel would map the zero page, and the first write fault again). */
#define COVER_PAGE_SLOTS (PAGE / sizeof *cover)
static uint64_t cover_written[COVER_SLOTS / COVER_PAGE_SLOTS / 64];

static size_t cover_index(uint64_t guest_pc)
{
    return (guest_pc >> COVER_BLOCK_SHIFT) & (COVER_SLOTS - 1);
}

static bool cover_page_written(size_t index)
{
    size_t page = index / COVER_PAGE_SLOTS;
    return cover_written[page / 64] >> (page % 64) & 1;
}

static bool may_enter_inside(const struct fragment *f)
{
    return !f->dead && !f->is_trace && !f->is_counter && !f->self_check && !f->whole_only &&
           !f->is_inner_entry;
}

static void note_cover(const struct fragment *f)
{
    if (!may_enter_inside(f) || f->guest_len < 2)
        return;
    if (!cover) {
        cover = mmap(NULL, COVER_SLOTS * sizeof *cover, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (cover == MAP_FAILED)
            dbo_fatal("out of memory for the inner entry index");
    }
    uint64_t first = (f->guest_pc + 1) >> COVER_BLOCK_SHIFT;
    uint64_t last = (fragment_guest_end(f) - 1) >> COVER_BLOCK_SHIFT;
    for (uint64_t block = first; block <= last; block++) {
        size_t index = cover_index(block << COVER_BLOCK_SHIFT), page = index / COVER_PAGE_SLOTS;
        cover[index] = f->serial;
        cover_written[page / 64] |= 1ull << (page % 64);
    }
}

struct fragment *cache_fragment_through(uint64_t guest_pc)
{
    size_t index = cover_index(guest_pc);
    if (!cover || !cover_page_written(index))
        return NULL;
    uint32_t serial = cover[index];
    uintptr_t slot = serial && serial < n_serials ? by_serial[serial] : 0;
    if (!slot || (slot & 1))
        return NULL; /* none, or a free number (the free list's last is 0) */
    struct fragment *f = (struct fragment *)slot;
    return may_enter_inside(f) && f->guest_pc < guest_pc && guest_pc < fragment_guest_end(f) ? f
                                                                                             : NULL;
}

void cache_insert_inner_entry(struct fragment *entry)
{
    cache_serial_new(entry); /* the page index names it by it */
    fragment_table_put(entry);
    index_pages(entry);
    u64map_put(&inner_entries, (uint64_t)entry->cache_pc, (uint64_t)entry);
}

struct fragment *cache_inner_entry_at(uint64_t cache_pc)
{
    uint64_t entry;
    return u64map_get(&inner_entries, cache_pc, &entry) ? (struct fragment *)entry : NULL;
}

void cache_insert(struct fragment *frag)
{
    if (!frag->serial) /* the table and the page index name it by it */
        cache_serial_new(frag);
    fragment_table_put(frag);
    chunk_add_fragment(frag);
    index_pages(frag);
    note_cover(frag);
}

static void unindex_pages(struct fragment *frag)
{
    if (!frag->indexed)
        return;
    uint64_t pages[MAX_FRAGMENT_PAGES];
    size_t n = fragment_pages(frag, pages);
    for (size_t i = 0; i < n; i++) {
        uint64_t pg = pages[i];
        uint64_t head;
        if (!u64map_get(&code_pages, pg + 1, &head))
            continue;
        uint32_t first = (uint32_t)head, *link = &first;
        while (*link && node_at(*link)->serial != frag->serial)
            link = &node_at(*link)->next;
        if (*link) {
            uint32_t node = *link;
            *link = node_at(node)->next;
            free_page_node(node);
        }
        if (first)
            u64map_put(&code_pages, pg + 1, (uint64_t)first);
        else
            u64map_remove(&code_pages, pg + 1);
    }
    frag->indexed = false;
}

static void add_dead(struct fragment *frag)
{
    if (n_dead == cap_dead)
        dead = realloc(dead, (cap_dead = cap_dead ? 2 * cap_dead : 256) * sizeof *dead);
    dead[n_dead++] = frag;
}

void cache_insert_helper(struct fragment *frag)
{
    chunk_add_fragment(frag);
    add_dead(frag); /* freed at the next flush, like the dead */
}

void cache_insert_transient(struct fragment *frag)
{
    cache_insert_helper(frag);
    frag->dead = true; /* never linked to */
}

/* Takes a live fragment out of the table, the page index and every link. */
static void retire_fragment(struct fragment *f)
{
    if (cache_lookup(f->guest_pc) == f)
        fragment_table_remove(f->guest_pc);
    unindex_pages(f);
    unlink_fragment(f);
    if (f->is_inner_entry)
        u64map_remove(&inner_entries, (uint64_t)f->cache_pc);
    f->dead = true;
}

/* Collects the branches linked to f (before unlinking it) into *list. */
static size_t incoming_of(struct fragment *f, struct exit_record ***list)
{
    size_t n = 0, cap = 0;
    *list = NULL;
    for (struct exit_record *e = f ? exit_by_id(f->incoming) : NULL; e;
         e = exit_by_id(e->next_incoming)) {
        if (n == cap)
            *list = realloc(*list, (cap = cap ? 2 * cap : 16) * sizeof **list);
        (*list)[n++] = e;
    }
    return n;
}

void cache_set_counter(uint64_t head_pc, struct fragment *counter)
{
    u64map_put(&counters, head_pc, (uint64_t)counter);
}

struct fragment *cache_counter(uint64_t head_pc)
{
    uint64_t frag;
    return u64map_get(&counters, head_pc, &frag) ? (struct fragment *)frag : NULL;
}

/* Links every branch in `in` to `to`, except those of dead fragments. */
static void relink(struct exit_record **in, size_t n, struct fragment *to)
{
    for (size_t i = 0; i < n; i++)
        if (!exit_from(in[i])->dead)
            cache_link(in[i], to);
    free(in);
}

void cache_drop_counter(struct fragment *counter, struct fragment *to)
{
    struct exit_record **in;
    size_t n = incoming_of(counter, &in);
    unlink_fragment(counter);
    counter->dead = true; /* it is on the dead list already */
    if (cache_counter(counter->guest_pc) == counter)
        u64map_remove(&counters, counter->guest_pc);
    relink(in, n, to);
}

void cache_install_trace(struct fragment *trace)
{
    struct fragment *old = cache_lookup(trace->guest_pc);
    struct fragment *counter = cache_counter(trace->guest_pc);
    struct exit_record **in;
    size_t n = incoming_of(old, &in);
    if (old) {
        retire_fragment(old);
        add_dead(old); /* its code stays until a flush: a thread may be inside */
    }
    cache_insert(trace);
    relink(in, n, trace);
    if (counter)
        cache_drop_counter(counter, trace);
}

/* Calls fn for every page in [first, last] that holds code. */
static void for_code_pages(uint64_t first, uint64_t last, void (*fn)(uint64_t page, void *),
                           void *arg)
{
    /* Walk the range's pages, a hash lookup each, only if that is cheaper
     * than a sequential scan of the map: a thread's 8 MiB stack given back
     * with madvise (glibc does it as every thread exits) is 2 000 lookups,
     * 11% of mb-thread's time when it was walked. */
    if ((last - first + 1) * 16 < code_pages.cap) {
        for (uint64_t pg = first; pg <= last; pg++)
            if (u64map_get(&code_pages, pg + 1, NULL))
                fn(pg, arg);
        return;
    }
    uint64_t *pages = malloc(code_pages.count * sizeof *pages);
    size_t n = 0;
    for (size_t i = 0; i < code_pages.cap; i++)
        if (code_pages.slots[i].key && code_pages.slots[i].key - 1 >= first &&
            code_pages.slots[i].key - 1 <= last)
            pages[n++] = code_pages.slots[i].key - 1;
    for (size_t i = 0; i < n; i++)
        fn(pages[i], arg);
    free(pages);
}

static void note_has_code(uint64_t page, void *arg)
{
    (void)page;
    *(bool *)arg = true;
}

bool cache_range_has_code(uint64_t start, uint64_t len)
{
    if (!code_pages.count || !len)
        return false;
    bool found = false;
    for_code_pages(start / PAGE, (start + len - 1) / PAGE, note_has_code, &found);
    return found;
}

struct victims {
    uint64_t start, end;
    struct fragment **list;
    size_t n, cap;
};

static void collect(uint64_t page, void *arg)
{
    struct victims *v = arg;
    uint64_t head;
    u64map_get(&code_pages, page + 1, &head);
    for (uint32_t node = (uint32_t)head; node; node = node_at(node)->next) {
        struct fragment *f = cache_fragment_by_serial(node_at(node)->serial);
        if (f->dead)
            continue;
        const struct fragment *code = code_owner(f);
        bool overlaps = false;
        for (uint32_t r = 0; r < fragment_n_ranges(code); r++) {
            struct guest_range g = fragment_range(code, r);
            overlaps |= g.start < v->end && g.end > v->start;
        }
        if (!overlaps)
            continue;
        f->dead = true; /* also marks it collected */
        if (v->n == v->cap)
            v->list = realloc(v->list, (v->cap = v->cap ? 2 * v->cap : 64) * sizeof *v->list);
        v->list[v->n++] = f;
    }
}

size_t cache_invalidate_range(uint64_t start, uint64_t len,
                              void (*on_dead)(struct fragment *, void *), void *arg)
{
    if (!len || !code_pages.count)
        return 0;
    struct victims v = {.start = start, .end = start + len};
    for_code_pages(start / PAGE, (start + len - 1) / PAGE, collect, &v);
    for (size_t i = 0; i < v.n; i++) {
        struct fragment *f = v.list[i];
        retire_fragment(f);
        if (on_dead)
            on_dead(f, arg);
        add_dead(f);
    }
    free(v.list);
    unprotect_range(start & ~(PAGE - 1), (start + len + PAGE - 1) & ~(PAGE - 1));
    dbo_stats.invalidations += v.n;
    return v.n;
}

uint64_t cache_far_target(const struct exit_record *exit)
{
    uint64_t target = 0;
    u64map_get(&far_targets, (uint64_t)exit, &target);
    return target;
}

void cache_set_far_target(const struct exit_record *exit, uint64_t target)
{
    u64map_put(&far_targets, (uint64_t)exit, target);
}

uint8_t *cache_late_stub(const struct exit_record *exit)
{
    uint64_t stub = 0;
    u64map_get(&late_stubs, (uint64_t)exit, &stub);
    return (uint8_t *)stub;
}

void cache_set_late_stub(const struct exit_record *exit, uint8_t *stub)
{
    u64map_put(&late_stubs, (uint64_t)exit, (uint64_t)stub);
}

void cache_free_fragment(struct fragment *f)
{
    for (uint32_t i = 0; i < f->n_exits; i++) {
        const struct exit_record *e = &fragment_exits(f)[i];
        if (e->far_target)
            u64map_remove(&far_targets, (uint64_t)e);
        if (e->stub_off == STUB_LATE && e->kind != EXIT_INDIRECT)
            u64map_remove(&late_stubs, (uint64_t)e);
    }
    cache_serial_release(f->serial);
    f->serial = 0; /* its memory goes with its chunk's records */
}

void cache_flush_all(bool retire, uint64_t generation)
{
    void (*drop)(struct fragment *) = retire ? keep_retired : cache_free_fragment;
    fragment_table_drain(drop);
    u64map_clear(&counters);
    u64map_clear(&inner_entries);
    for (size_t i = 0; i < n_dead; i++)
        drop(dead[i]);
    n_dead = 0;
    coherence_reset();
    u64map_clear(&code_pages);
    reset_page_nodes();
    cache_chunks_reset(retire, generation);
    dbo_stats.flushes++;
}
