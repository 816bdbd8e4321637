/* The guest-PC -> fragment table, the set of guest pages holding
 * translated code, invalidation of a guest range, and the full flush. */
#include <stdlib.h>
#include <string.h>

#include "cache/cache_internal.h"
#include "runtime/runtime.h"
#include "translator/translator.h"

struct u64map fragment_table;
struct u64map code_pages;

/* Invalidated fragments: unreachable, but their code and exit records may
 * still be in use by a thread that was inside; freed at the next flush. */
static struct fragment **dead;
static size_t n_dead, cap_dead;
/* Fragments of retired chunks: other threads may still pass their stubs. */
static struct fragment **retired_frags;
static size_t n_retired_frags, cap_retired_frags;

static void keep_retired(struct fragment *f)
{
    if (n_retired_frags == cap_retired_frags)
        retired_frags = realloc(retired_frags, (cap_retired_frags = cap_retired_frags
                                                                        ? 2 * cap_retired_frags
                                                                        : 1024) *
                                                   sizeof *retired_frags);
    retired_frags[n_retired_frags++] = f;
}

struct fragment *cache_lookup(uint64_t guest_pc)
{
    uint64_t v;
    return u64map_get(&fragment_table, guest_pc, &v) ? (struct fragment *)v : NULL;
}

void cache_insert(struct fragment *frag)
{
    u64map_put(&fragment_table, frag->guest_pc, (uint64_t)frag);
    chunk_add_fragment(frag);
    for (uint64_t pg = frag->guest_pc / PAGE; pg <= (frag->guest_end - 1) / PAGE; pg++)
        u64map_put(&code_pages, pg + 1, 1); /* +1: key zero marks an empty slot */
}

void cache_insert_transient(struct fragment *frag)
{
    chunk_add_fragment(frag);
    frag->dead = true; /* never linked to */
    if (n_dead == cap_dead)
        dead = realloc(dead, (cap_dead = cap_dead ? 2 * cap_dead : 256) * sizeof *dead);
    dead[n_dead++] = frag;
}

bool cache_range_has_code(uint64_t start, uint64_t len)
{
    if (!code_pages.count || !len)
        return false;
    uint64_t first = start / PAGE, last = (start + len - 1) / PAGE;
    if (last - first < code_pages.cap) {
        for (uint64_t pg = first; pg <= last; pg++)
            if (u64map_get(&code_pages, pg + 1, NULL))
                return true;
        return false;
    }
    for (size_t i = 0; i < code_pages.cap; i++)
        if (code_pages.keys[i] && code_pages.keys[i] - 1 >= first && code_pages.keys[i] - 1 <= last)
            return true;
    return false;
}

size_t cache_invalidate_range(uint64_t start, uint64_t len,
                              void (*on_dead)(struct fragment *, void *), void *arg)
{
    if (!cache_range_has_code(start, len))
        return 0;
    uint64_t end = start + len;
    size_t n = 0;
    /* Collect first: removal reshuffles the table. */
    struct fragment **victims = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < fragment_table.cap; i++) {
        if (!fragment_table.keys[i])
            continue;
        struct fragment *f = (struct fragment *)fragment_table.vals[i];
        if (f->guest_pc < end && f->guest_end > start) {
            if (n == cap)
                victims = realloc(victims, (cap = cap ? 2 * cap : 64) * sizeof *victims);
            victims[n++] = f;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct fragment *f = victims[i];
        u64map_remove(&fragment_table, f->guest_pc);
        unlink_fragment(f);
        f->dead = true;
        if (on_dead)
            on_dead(f, arg);
        if (n_dead == cap_dead)
            dead = realloc(dead, (cap_dead = cap_dead ? 2 * cap_dead : 256) * sizeof *dead);
        dead[n_dead++] = f;
    }
    free(victims);
    /* Whole pages are now free of code unless a survivor still covers them. */
    uint64_t first = start / PAGE, last = (end - 1) / PAGE;
    if (last - first < 4096) {
        for (uint64_t pg = first; pg <= last; pg++)
            u64map_remove(&code_pages, pg + 1);
        for (size_t i = 0; i < fragment_table.cap; i++) {
            if (!fragment_table.keys[i])
                continue;
            struct fragment *f = (struct fragment *)fragment_table.vals[i];
            for (uint64_t pg = f->guest_pc / PAGE; pg <= (f->guest_end - 1) / PAGE; pg++)
                if (pg >= first && pg <= last)
                    u64map_put(&code_pages, pg + 1, 1);
        }
    }
    unprotect_range(start & ~(PAGE - 1), (end + PAGE - 1) & ~(PAGE - 1));
    dbo_stats.invalidations += n;
    return n;
}

static void free_fragment(struct fragment *f)
{
    free(f->exits);
    free(f->pc_map);
    free(f);
}

void cache_fragments_retired_free(void)
{
    for (size_t i = 0; i < n_retired_frags; i++)
        free_fragment(retired_frags[i]);
    n_retired_frags = 0;
}

void cache_flush_all(bool retire)
{
    void (*drop)(struct fragment *) = retire ? keep_retired : free_fragment;
    for (size_t i = 0; i < fragment_table.cap; i++)
        if (fragment_table.keys[i])
            drop((struct fragment *)fragment_table.vals[i]);
    u64map_clear(&fragment_table);
    for (size_t i = 0; i < n_dead; i++)
        drop(dead[i]);
    n_dead = 0;
    coherence_reset();
    u64map_clear(&code_pages);
    cache_chunks_reset(retire);
    dbo_stats.flushes++;
}
