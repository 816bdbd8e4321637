/* Linking: a direct exit whose target is translated jumps straight to it.
 * Every link is recorded on the target's incoming list so that an
 * invalidated fragment can be cut out (its incoming branches go back to
 * their exit stubs). Patches are single aligned-enough stores: a rel32 that
 * never crosses a cache line, or a far jump written into an unused stub. */
#include <string.h>

#include "cache/cache_internal.h"
#include "runtime/runtime.h"
#include "translator/translator.h"

/* The first 14 bytes of every exit stub (they spill rcx and rdx, the same
 * in all): what a far link overwrites and its unlinking puts back. Taken
 * from the first stub linked far. */
static uint8_t stub_head[14];
static bool have_stub_head;

static bool fits_rel32(const uint8_t *from_end, const uint8_t *target)
{
    int64_t d = target - from_end;
    return d == (int32_t)d;
}

static void store_rel32(uint8_t *rel, const uint8_t *target)
{
    int32_t d = (int32_t)(target - (rel + 4));
    __atomic_store_n((int32_t *)rel, d, __ATOMIC_RELEASE);
}

void cache_link(struct exit_record *exit, struct fragment *to)
{
    if (exit->linked || to->dead)
        return;
    if (exit->branch_rel32 && fits_rel32(exit->branch_rel32 + 4, to->cache_pc)) {
        store_rel32(exit->branch_rel32, to->cache_pc);
    } else if (exit->stub) {
        /* Too far for rel32: the stub becomes jmp *0(%rip); .quad target. */
        uint8_t far[14] = {0xff, 0x25, 0, 0, 0, 0};
        uint64_t target = (uint64_t)to->cache_pc;
        memcpy(far + 6, &target, 8);
        if (!have_stub_head) {
            memcpy(stub_head, exit->stub, sizeof stub_head);
            have_stub_head = true;
        } else if (memcmp(stub_head, exit->stub, sizeof stub_head)) {
            dbo_fatal("exit stub at %p is not like the others", (void *)exit->stub);
        }
        memcpy(exit->stub, far, sizeof far);
    } else {
        return;
    }
    exit->linked = true;
    exit->to = to;
    exit->next_incoming = to->incoming;
    to->incoming = exit;
}

static void unlink_exit(struct exit_record *e)
{
    if (!e->linked)
        return;
    if (e->branch_rel32 && fits_rel32(e->branch_rel32 + 4, e->to->cache_pc))
        store_rel32(e->branch_rel32, e->stub);
    else
        memcpy(e->stub, stub_head, sizeof stub_head);
    e->linked = false;
    e->to = NULL;
}

void unlink_fragment(struct fragment *frag)
{
    for (struct exit_record *e = frag->incoming; e;) {
        struct exit_record *next = e->next_incoming;
        unlink_exit(e);
        e->next_incoming = NULL;
        e = next;
    }
    frag->incoming = NULL;
    /* Its own links leave their targets' incoming lists. */
    for (uint32_t i = 0; i < frag->n_exits; i++) {
        struct exit_record *e = &fragment_exits(frag)[i];
        if (!e->linked)
            continue;
        for (struct exit_record **p = &e->to->incoming; *p; p = &(*p)->next_incoming) {
            if (*p == e) {
                *p = e->next_incoming;
                break;
            }
        }
        e->linked = false; /* its code stays as it was: the fragment is dead */
        e->to = NULL;
    }
}
