/* A small open-addressing hash map from nonzero 64-bit keys to 64-bit
 * values (linear probing, backward-shift deletion). Internal to cache/. */
#ifndef DBO_CACHE_U64MAP_H
#define DBO_CACHE_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct u64map_slot {
    uint64_t key; /* 0 marks an empty slot */
    uint64_t val; /* beside its key: a lookup touches one cache line */
};

struct u64map {
    struct u64map_slot *slots;
    size_t cap, count;
};

bool u64map_get(const struct u64map *m, uint64_t key, uint64_t *val);
void u64map_put(struct u64map *m, uint64_t key, uint64_t val);
/* The value of key, put there as 0 if the key was not: one probe where a
 * get and a put take two. Valid until the next put. */
uint64_t *u64map_at(struct u64map *m, uint64_t key);
bool u64map_remove(struct u64map *m, uint64_t key);
void u64map_clear(struct u64map *m);

#endif
