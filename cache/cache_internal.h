/* Shared between the files of cache/ only. */
#ifndef DBO_CACHE_INTERNAL_H
#define DBO_CACHE_INTERNAL_H

#include "cache/cache.h"
#include "cache/u64map.h"

#define PAGE 4096ul

/* guest pc -> every live fragment, which has a serial number
 * (fragment_table.c); drain empties it, handing each to `drop`. */
struct fragment *fragment_table_get(uint64_t guest_pc);
void fragment_table_put(struct fragment *frag);
void fragment_table_remove(uint64_t guest_pc);
void fragment_table_drain(void (*drop)(struct fragment *));
/* page number + 1 -> the first page-index node of every page that holds
 * translated code (table.c) */
extern struct u64map code_pages;

/* The distinct guest pages a fragment's code comes from, in order; at
 * most MAX_FRAGMENT_PAGES (table.c). */
#define MAX_FRAGMENT_PAGES 64
size_t fragment_pages(const struct fragment *f, uint64_t *pages);

/* The address index of fragments in cache memory (chunks.c). */
void chunk_add_fragment(struct fragment *frag);
/* Resets the chunks for a flush; with `retire`, sets them aside as
 * retired by flush `generation`, with their fragments. */
void cache_chunks_reset(bool retire, uint64_t generation);

void cache_set_late_stub(const struct exit_record *exit, uint8_t *stub); /* table.c */

/* The live inner entry whose code is at cache_pc, or NULL (table.c). */
struct fragment *cache_inner_entry_at(uint64_t cache_pc);

/* Unlinks every branch into `frag` and from it (link.c). */
void unlink_fragment(struct fragment *frag);

/* Drops write protection of every page in [start, end) (coherence.c). */
void unprotect_range(uint64_t start, uint64_t end);
void coherence_reset(void);

#endif
