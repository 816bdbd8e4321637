/* Code cache: executable memory near the guest code it translates, the
 * guest-PC -> fragment table, linking, and flushing. */
#ifndef DBO_CACHE_H
#define DBO_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct exit_record;

/* Where each guest instruction's translation starts, so that a cache PC can
 * be mapped back to the guest PC (precise signals): the fragment's first
 * one at first_insn_off, then one step per instruction, in order. */
struct pc_map_step {
    uint16_t cache_len; /* bytes of its translation, to the next one's (builder.h) */
    uint8_t guest_len;  /* its length (0 in a trace: a trace keeps their pcs) */
    bool spilled;       /* %rcx/%rdx live in their %gs: spill slots in it */
};
/* A step is stored in one byte where its code is its guest bytes plus 0-7
 * (most: copied, or a short branch made long) and nothing is spilled:
 * 0ddd llll (l: guest_len, d: cache_len - guest_len); else in three:
 * 100s llll, then cache_len in 16 bits. cc1 has a million steps; they
 * took two bytes each (four, with offsets instead of lengths). */
#define PC_MAP_MAX_STEP 3
static inline size_t pc_map_write(uint8_t *out, struct pc_map_step s)
{
    uint32_t extra = (uint32_t)s.cache_len - s.guest_len;
    if (!s.spilled && s.cache_len >= s.guest_len && extra < 8) {
        out[0] = (uint8_t)(extra << 4 | s.guest_len);
        return 1;
    }
    out[0] = (uint8_t)(0x80 | (s.spilled ? 0x10 : 0) | s.guest_len);
    out[1] = (uint8_t)s.cache_len;
    out[2] = (uint8_t)(s.cache_len >> 8);
    return 3;
}

static inline struct pc_map_step pc_map_read(const uint8_t **in)
{
    const uint8_t *p = *in;
    struct pc_map_step s = {.guest_len = p[0] & 0xf};
    if (p[0] & 0x80) {
        s.spilled = p[0] & 0x10;
        s.cache_len = (uint16_t)(p[1] | p[2] << 8);
        *in = p + 3;
    } else {
        s.cache_len = (uint16_t)(s.guest_len + (p[0] >> 4));
        *in = p + 1;
    }
    return s;
}
#define PC_MAP_MAX_CACHE_LEN 2047

/* Guest bytes [start, end) that a fragment translates. */
struct guest_range {
    uint64_t start, end;
};

/* A fragment's single allocation holds the struct, then its n_exits exit
 * records, then (a trace's) the guest pc of each instruction and its
 * ranges, then its pc map: one per guest instruction, in order. Their
 * addresses follow from the counts (fragment_exits() and the others
 * below) rather than being kept: 32 bytes less a fragment, of which cc1
 * has 93 000. */
struct fragment {
    uint64_t guest_pc;    /* first guest instruction */
    uint8_t *cache_pc;    /* entry point in the cache */
    uint32_t incoming;    /* the first exit linked to it, by exit_id() (0: none) */
    uint32_t cold_off;    /* its cold code's start, from cache_pc */
    uint32_t serial : 24; /* names it in exit ids and indexes (cache_serial_new); 0: none */
    /* Sizes and counts are bounded by the builder (builder.h): code and
     * cold code under 32 KiB, up to 40 exits, 256 instructions, 16 blocks. */
    uint32_t n_exits : 6;
    /* An inner entry (see below): no code or exits of its own. */
    uint32_t is_inner_entry : 1;
    /* Its code relies on what its first instructions did (a proven jump
     * table's bound, a system call number known): no inner entries. */
    uint32_t whole_only : 1;
    uint16_t cache_size;
    uint16_t cold_bytes; /* its cold code (exit stubs, lookup misses), apart (see chunks.c) */
    uint16_t n_insns;
    uint16_t first_insn_off; /* its first instruction's code, from cache_pc (pc map) */
    /* The guest bytes translated (of its first range): fragment_guest_end(). */
    uint16_t guest_len;
    /* A trace (optimizer/) follows a path through several blocks, n_ranges
     * of them; a fragment has one contiguous range [guest_pc, guest_end). */
    uint8_t n_ranges;
    uint8_t ends_with : 2; /* enum fragment_end: how its last instruction leaves */
    bool is_trace : 1;
    bool dead : 1;        /* invalidated; code kept until a flush */
    bool self_check : 1;  /* checks its guest bytes on entry */
    bool is_counter : 1;  /* a trace head's execution counter, no guest code */
    bool indexed : 1;     /* in the page index (table.c) */
    bool site_target : 1; /* in some thread's jump-table site slots (table_jump.c) */
};
/* 40 bytes (cc1 has 93 000): its exit records follow it. */
_Static_assert(sizeof(struct fragment) == 40, "fragment records stay small");

/* An inner entry is a guest pc that some fragment built before runs
 * through, at the start of an instruction's code with nothing spilled: its
 * record's cache_pc is that instruction's code in the fragment, so direct
 * branches to the pc link straight there, rather than to a copy of the
 * fragment's rest (a third of what ls and cc1 translated was such copies).
 * Its indirect entry is a stub of its own that restores %rcx and jumps
 * there. The record is the struct and then this; it dies with the fragment
 * it enters (cache_invalidate_range()). */
struct inner_entry_tail {
    uint8_t *indirect_entry;
    struct fragment *into;
};

static inline struct inner_entry_tail *inner_entry_tail(const struct fragment *f)
{
    return (struct inner_entry_tail *)(f + 1);
}

/* One past the last guest byte it translates (of its first range). */
static inline uint64_t fragment_guest_end(const struct fragment *f)
{
    return f->guest_pc + f->guest_len;
}

enum fragment_end {
    ENDS_OTHER,
    ENDS_CALL,     /* a call, direct or indirect */
    ENDS_RETURN,   /* a return */
    ENDS_INDIRECT, /* an indirect jump */
};

#define EXIT_RECORD_SIZE 16 /* sizeof(struct exit_record), checked in translator.h */

static inline struct exit_record *fragment_exits(const struct fragment *f)
{
    return (struct exit_record *)(f + 1);
}

/* A trace's guest pc of each instruction (NULL for a fragment: its pc map
 * has offsets from guest_pc). */
static inline uint64_t *fragment_insn_pcs(const struct fragment *f)
{
    return f->is_trace ? (uint64_t *)((uint8_t *)(f + 1) + f->n_exits * EXIT_RECORD_SIZE) : NULL;
}

static inline uint8_t *fragment_pc_map(const struct fragment *f)
{
    uint8_t *p = (uint8_t *)(f + 1) + f->n_exits * EXIT_RECORD_SIZE;
    if (f->is_trace)
        p += f->n_insns * sizeof(uint64_t) + f->n_ranges * sizeof(struct guest_range);
    return p;
}

/* The bytes a fragment's allocation needs for these counts. */
static inline size_t fragment_alloc_size(uint32_t n_exits, uint32_t n_insns, size_t pc_map_bytes,
                                         bool is_trace, uint32_t n_ranges)
{
    size_t size = sizeof(struct fragment) + n_exits * EXIT_RECORD_SIZE + pc_map_bytes;
    if (is_trace)
        size += n_insns * sizeof(uint64_t) + n_ranges * sizeof(struct guest_range);
    return size;
}

static inline uint32_t fragment_n_ranges(const struct fragment *f)
{
    return f->is_trace ? f->n_ranges : 1;
}

static inline struct guest_range fragment_range(const struct fragment *f, uint32_t i)
{
    if (!f->is_trace)
        return (struct guest_range){f->guest_pc, fragment_guest_end(f)};
    const struct guest_range *ranges =
        (const struct guest_range *)(fragment_insn_pcs(f) + f->n_insns);
    return ranges[i];
}

/* A contiguous region of cache memory: fragments are bump-allocated
 * upwards from its start (the cursor), their cold code (exit stubs,
 * lookup misses) downwards from its end. */
struct cache_chunk;

/* Returns a chunk whose whole extent lies within +-1.5 GiB of guest_pc and
 * has at least `bytes` free between cursor and cold code, mapping a new one if needed (NULL if none
 * can be placed near enough). */
struct cache_chunk *cache_chunk_near(uint64_t guest_pc, size_t bytes);
uint8_t *cache_chunk_cursor(struct cache_chunk *chunk);
/* The start of the cold code so far: new cold code goes just below it. */
uint8_t *cache_chunk_cold(struct cache_chunk *chunk);
/* A fragment committed to the chunk has `n` exits linked when it was made,
 * without a stub: room for theirs is kept free (untouched, so costing no
 * memory) in case they are unlinked (cache_stub_space()). */
void cache_chunk_reserve_stubs(struct cache_chunk *chunk, uint32_t n);
/* The tail every exit stub of the chunk holding `stub` jumps to (chunks.c). */
#define STUB_TAIL_SIZE 16
uint8_t *cache_stub_tail(const uint8_t *stub);
/* STUB_SIZE bytes of that room in the chunk holding cache_pc. */
uint8_t *cache_stub_space(uint64_t cache_pc);
/* Zeroed memory for a record of a fragment whose code is in the chunk:
 * freed with the chunk's code at a flush (cache_free_fragment() does not
 * free it). */
void *cache_record_alloc(struct cache_chunk *chunk, size_t size);
/* Keeps a fragment: hot code up to new_cursor, cold_bytes below the cold start. */
void cache_chunk_commit(struct cache_chunk *chunk, uint8_t *new_cursor, size_t cold_bytes);
/* True if addr lies in any cache chunk (runtime memory the guest must not touch). */
bool cache_owns(uint64_t addr, uint64_t len);
size_t cache_bytes_used(void);

/* Lets go of a fragment's serial number and far exit targets: one the
 * cache does not hold (yet), or dropped from it (table.c). Its record
 * goes with its chunk's (cache_record_alloc()). */
void cache_free_fragment(struct fragment *f);

struct fragment *cache_lookup(uint64_t guest_pc);
/* A live fragment whose guest code runs through guest_pc (not starting
 * there) and that inner entries may enter: not a trace, a self-checking
 * fragment, a whole_only one or an inner entry itself. NULL if none is
 * found (the index is a direct-mapped guess: it may miss one). */
struct fragment *cache_fragment_through(uint64_t guest_pc);
/* Puts an inner entry in the table and the page index. */
void cache_insert_inner_entry(struct fragment *entry);
/* The live fragment whose code contains cache_pc, or NULL. */
struct fragment *cache_fragment_at(uint64_t cache_pc);
void cache_insert(struct fragment *frag);
/* Records a fragment that is not in the table (freed at the next flush). */
void cache_insert_transient(struct fragment *frag);
/* The same for code that may be linked to but has no guest code of its
 * own (a trace head's counter). */
void cache_insert_helper(struct fragment *frag);
/* Trace heads' counters, by head guest pc (NULL if none). */
void cache_set_counter(uint64_t head_pc, struct fragment *counter);
struct fragment *cache_counter(uint64_t head_pc);
/* Puts a trace in the table in place of the fragment for its first guest
 * pc and of that head's counter: every branch linked to either is linked
 * to the trace now. */
void cache_install_trace(struct fragment *trace);
/* A head that will not become a trace: branches linked to its counter go
 * straight to `to` (the head's fragment) from now on. */
void cache_drop_counter(struct fragment *counter, struct fragment *to);

/* Serial numbers (1 up to 2^23 - 1) of fragments with exit stubs, which
 * name their exit by it: given when the fragment is made, free again when
 * it is freed. */
uint32_t cache_serial_new(struct fragment *frag);
void cache_serial_release(uint32_t serial);
struct fragment *cache_fragment_by_serial(uint32_t serial);

/* Exit targets too far from their fragment's guest_pc for the record's
 * 32-bit offset (translator.h: exit_target()), by record. */
uint64_t cache_far_target(const struct exit_record *exit);
void cache_set_far_target(const struct exit_record *exit, uint64_t target);

/* The stub given to an exit made without one (translator.h, link.c). */
uint8_t *cache_late_stub(const struct exit_record *exit);

/* Points the exit's branch (or its stub) straight at `to`. */
void cache_link(struct exit_record *exit, struct fragment *to);
/* Links an exit made without a stub, its branch already at `to`; if that
 * cannot be (to NULL or dead), gives it a stub and points it there. */
void cache_link_at_birth(struct exit_record *exit, struct fragment *to);

/* Pages holding translated code: a write, unmap or protection change there
 * must flush. Returns true if [start, start+len) holds any. */
bool cache_range_has_code(uint64_t start, uint64_t len);

/* Invalidates every fragment that overlaps [start, start+len): incoming
 * branches go back to their stubs, the table forgets them, their pages lose
 * write protection; `on_dead` sees each. Code memory stays until a flush. */
size_t cache_invalidate_range(uint64_t start, uint64_t len,
                              void (*on_dead)(struct fragment *, void *), void *arg);

/* Self-modifying code (DESIGN.md decision 6). Guest-writable pages that
 * hold translated code are write-protected; a write there faults and
 * cache_write_fault() invalidates the page and lets the write through.
 * A page written repeatedly becomes volatile: it stays writable, and
 * fragments from it check their own guest bytes on entry instead. */
void cache_protect_code(const struct fragment *frag);
bool cache_page_volatile(uint64_t addr);
void cache_mark_volatile(uint64_t start, uint64_t len);
bool cache_page_protected(uint64_t addr);
bool cache_write_fault(uint64_t addr, void (*on_dead)(struct fragment *, void *), void *arg);
/* Invalidates the code on every write-protected page and drops the
 * protection: for a kernel write that failed with EFAULT on one of them.
 * Returns false if no page was protected. */
bool cache_unprotect_all(void (*on_dead)(struct fragment *, void *), void *arg);

/* Drops every fragment (all links and table entries with them). With
 * `retire`, the current chunks and their fragments are set aside rather
 * than reused, because other threads may still run code in them, as
 * retired by flush `generation` (counted by the caller, from 1);
 * cache_free_retired() frees them once nobody can. Retired code links only
 * to code retired by the same flush. The caller clears the indirect
 * tables. */
void cache_flush_all(bool retire, uint64_t generation);
bool cache_has_retired(void);
/* The flush that retired the chunk holding cache_pc, or 0. */
uint64_t cache_retired_generation(uint64_t cache_pc);
/* Frees the retired chunks, and their fragments, of every generation that
 * in_use() says no thread can run in any more. */
void cache_free_retired(bool (*in_use)(uint64_t generation, void *arg), void *arg);

#endif
