#define XXH_INLINE_ALL
#include "cache/u64map.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static size_t home(uint64_t key, size_t cap)
{
    return XXH3_64bits(&key, sizeof key) & (cap - 1);
}

bool u64map_get(const struct u64map *m, uint64_t key, uint64_t *val)
{
    if (!m->cap)
        return false;
    for (size_t i = home(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i])
            return false;
        if (m->keys[i] == key) {
            if (val)
                *val = m->vals[i];
            return true;
        }
    }
}

static void insert(uint64_t *keys, uint64_t *vals, size_t cap, uint64_t key, uint64_t val)
{
    size_t i = home(key, cap);
    while (keys[i] && keys[i] != key)
        i = (i + 1) & (cap - 1);
    keys[i] = key;
    vals[i] = val;
}

void u64map_put(struct u64map *m, uint64_t key, uint64_t val)
{
    if (u64map_get(m, key, NULL)) {
        insert(m->keys, m->vals, m->cap, key, val);
        return;
    }
    if (2 * (m->count + 1) > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 1024;
        uint64_t *keys = calloc(cap, sizeof *keys), *vals = calloc(cap, sizeof *vals);
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i])
                insert(keys, vals, cap, m->keys[i], m->vals[i]);
        free(m->keys);
        free(m->vals);
        m->keys = keys;
        m->vals = vals;
        m->cap = cap;
    }
    insert(m->keys, m->vals, m->cap, key, val);
    m->count++;
}

bool u64map_remove(struct u64map *m, uint64_t key)
{
    if (!m->cap)
        return false;
    size_t i = home(key, m->cap);
    while (m->keys[i] != key) {
        if (!m->keys[i])
            return false;
        i = (i + 1) & (m->cap - 1);
    }
    /* Backward shift: move later members of the probe run into the hole. */
    for (size_t j = (i + 1) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
        size_t h = home(m->keys[j], m->cap);
        bool movable = (j > i) ? (h <= i || h > j) : (h <= i && h > j);
        if (movable) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->count--;
    return true;
}

void u64map_clear(struct u64map *m)
{
    if (m->cap) {
        memset(m->keys, 0, m->cap * sizeof *m->keys);
        memset(m->vals, 0, m->cap * sizeof *m->vals);
    }
    m->count = 0;
}
