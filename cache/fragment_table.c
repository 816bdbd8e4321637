/* The guest-PC -> fragment table: open addressing, linear probing, load at
 * most 3/4. A slot is 8 bytes: the low half of the guest pc and the
 * fragment's serial number (0: empty); the full pc is checked on the
 * fragment when the low halves match. With a 16-byte slot (pc, pointer)
 * cc1's 93 000 fragments took 2 MiB, now 1 MiB. */
#include <stdlib.h>
#include <string.h>

#include "cache/cache_internal.h"
#include "runtime/runtime.h"

struct table_slot {
    uint32_t pc_lo;
    uint32_t serial;
};

static struct table_slot *slots;
static size_t cap, count;

/* One bit per hash value's top bits, eight per slot of the table: clear
 * if no fragment with that hash was put in (since the last drain or
 * growth). Most lookups while a program starts are for code not
 * translated yet: the bit answers them without walking a probe run to its
 * end. Removals leave their bit set. (Sized with the table: a fixed 64 KiB
 * of bits, read at random before being written, cost /bin/true 32 page
 * faults.) */
static uint64_t *present;
static unsigned present_shift; /* 64 - log2(bits) */

/* Fibonacci hashing, the product's high half folded into its low one
 * (home slots use the low bits, presence bits the high ones): three
 * instructions where XXH3 took twenty, on the path of every lookup (2% of
 * /bin/true's instructions); on cc1's 93 000 fragment addresses its probe
 * runs are as long as ideal linear probing's (2.24 at load 0.71). */
static uint64_t hash(uint64_t guest_pc)
{
    uint64_t h = guest_pc * 0x9e3779b97f4a7c15ull;
    return h ^ h >> 32;
}

static size_t home(uint64_t guest_pc, size_t n)
{
    return hash(guest_pc) & (n - 1);
}

static bool maybe_present(uint64_t h)
{
    uint64_t bit = h >> present_shift;
    return present[bit / 64] >> (bit % 64) & 1;
}

static void mark_present(uint64_t h)
{
    uint64_t bit = h >> present_shift;
    present[bit / 64] |= 1ull << (bit % 64);
}

static bool holds(const struct table_slot *s, uint64_t guest_pc)
{
    return s->pc_lo == (uint32_t)guest_pc &&
           cache_fragment_by_serial(s->serial)->guest_pc == guest_pc;
}

struct fragment *fragment_table_get(uint64_t guest_pc)
{
    uint64_t h = hash(guest_pc);
    if (!cap || !maybe_present(h))
        return NULL;
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (!slots[i].serial)
            return NULL;
        if (slots[i].pc_lo != (uint32_t)guest_pc)
            continue;
        struct fragment *f = cache_fragment_by_serial(slots[i].serial);
        if (f->guest_pc == guest_pc)
            return f;
    }
}

/* Puts the slot for guest_pc in its place; true if it was not there. */
static bool insert(struct table_slot *in, size_t n, uint64_t guest_pc, uint32_t serial)
{
    size_t i = home(guest_pc, n);
    while (in[i].serial && !holds(&in[i], guest_pc))
        i = (i + 1) & (n - 1);
    bool added = !in[i].serial;
    in[i] = (struct table_slot){(uint32_t)guest_pc, serial};
    return added;
}

void fragment_table_put(struct fragment *frag)
{
    if (!frag->serial)
        dbo_fatal("a fragment in the table needs a serial number");
    if (4 * (count + 1) > 3 * cap) {
        size_t n = cap ? 2 * cap : 1024;
        struct table_slot *grown = calloc(n, sizeof *grown);
        uint64_t *bits = calloc(n / 8, sizeof *bits); /* 8 n bits */
        if (!grown || !bits)
            dbo_fatal("out of memory for the fragment table");
        free(present);
        present = bits;
        present_shift = (unsigned)(64 - __builtin_ctzll(8 * n));
        for (size_t i = 0; i < cap; i++) {
            if (!slots[i].serial)
                continue;
            uint64_t pc = cache_fragment_by_serial(slots[i].serial)->guest_pc;
            insert(grown, n, pc, slots[i].serial);
            mark_present(hash(pc));
        }
        free(slots);
        slots = grown;
        cap = n;
    }
    count += insert(slots, cap, frag->guest_pc, frag->serial);
    mark_present(hash(frag->guest_pc));
}

void fragment_table_remove(uint64_t guest_pc)
{
    if (!cap)
        return;
    size_t i = home(guest_pc, cap);
    while (!holds(&slots[i], guest_pc)) {
        if (!slots[i].serial)
            return;
        i = (i + 1) & (cap - 1);
    }
    /* Backward shift: move later members of the probe run into the hole. */
    for (size_t j = (i + 1) & (cap - 1); slots[j].serial; j = (j + 1) & (cap - 1)) {
        size_t h = home(cache_fragment_by_serial(slots[j].serial)->guest_pc, cap);
        bool movable = (j > i) ? (h <= i || h > j) : (h <= i && h > j);
        if (movable) {
            slots[i] = slots[j];
            i = j;
        }
    }
    slots[i].serial = 0;
    count--;
}

void fragment_table_drain(void (*drop)(struct fragment *))
{
    for (size_t i = 0; i < cap; i++) {
        if (slots[i].serial) {
            uint32_t serial = slots[i].serial;
            slots[i].serial = 0;
            drop(cache_fragment_by_serial(serial));
        }
    }
    count = 0;
    if (present)
        memset(present, 0, cap); /* 8 cap bits */
}
