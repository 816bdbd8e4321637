#define XXH_INLINE_ALL
#include "cache/u64map.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static size_t home(uint64_t key, size_t cap)
{
    return XXH3_64bits(&key, sizeof key) & (cap - 1);
}

/* The slot that holds key, or the empty one where it would go (cap > 0). */
static size_t slot_of(const struct u64map_slot *slots, size_t cap, uint64_t key)
{
    size_t i = home(key, cap);
    while (slots[i].key && slots[i].key != key)
        i = (i + 1) & (cap - 1);
    return i;
}

bool u64map_get(const struct u64map *m, uint64_t key, uint64_t *val)
{
    if (!m->cap)
        return false;
    const struct u64map_slot *s = &m->slots[slot_of(m->slots, m->cap, key)];
    if (!s->key)
        return false;
    if (val)
        *val = s->val;
    return true;
}

/* Puts key at its slot; returns true if it was not there before. */
static bool insert(struct u64map_slot *slots, size_t cap, uint64_t key, uint64_t val)
{
    size_t i = slot_of(slots, cap, key);
    bool added = !slots[i].key;
    slots[i] = (struct u64map_slot){key, val};
    return added;
}

static void make_room(struct u64map *m)
{
    if (4 * (m->count + 1) > 3 * m->cap) { /* load at most 3/4: cc1 has 93 000 fragments */
        size_t cap = m->cap ? 2 * m->cap : 1024;
        struct u64map_slot *slots = calloc(cap, sizeof *slots);
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key)
                insert(slots, cap, m->slots[i].key, m->slots[i].val);
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
    }
}

void u64map_put(struct u64map *m, uint64_t key, uint64_t val)
{
    make_room(m);
    m->count += insert(m->slots, m->cap, key, val);
}

uint64_t *u64map_at(struct u64map *m, uint64_t key)
{
    make_room(m);
    size_t i = slot_of(m->slots, m->cap, key);
    if (!m->slots[i].key) {
        m->slots[i] = (struct u64map_slot){key, 0};
        m->count++;
    }
    return &m->slots[i].val;
}

bool u64map_remove(struct u64map *m, uint64_t key)
{
    if (!m->cap)
        return false;
    size_t i = slot_of(m->slots, m->cap, key);
    if (!m->slots[i].key)
        return false;
    /* Backward shift: move later members of the probe run into the hole. */
    for (size_t j = (i + 1) & (m->cap - 1); m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
        size_t h = home(m->slots[j].key, m->cap);
        bool movable = (j > i) ? (h <= i || h > j) : (h <= i && h > j);
        if (movable) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = 0;
    m->count--;
    return true;
}

void u64map_clear(struct u64map *m)
{
    if (m->cap)
        memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->count = 0;
}
