/* Linking: a direct exit whose target is translated jumps straight to it.
 * Every link is recorded on the target's incoming list so that an
 * invalidated fragment can be cut out (its incoming branches go back to
 * their exit stubs). Patches are single aligned-enough stores: a rel32 that
 * never crosses a cache line, or a far jump written into an unused stub. */
#include <string.h>

#include "cache/cache_internal.h"
#include "runtime/runtime.h"
#include "translator/translator.h"

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

/* The exit's stub; one linked when it was made has none until it needs
 * one (unlinked, or linked far): made then, in the room its chunk kept. */
static uint8_t *stub_of(struct exit_record *e)
{
    uint8_t *stub = exit_stub(e);
    if (stub || !exit_branch(e) || e->kind == EXIT_INDIRECT)
        return stub;
    stub = cache_stub_space((uint64_t)exit_branch(e));
    write_exit_stub(stub, stub, exit_id(e));
    e->stub_off = STUB_LATE;
    cache_set_late_stub(e, stub);
    return stub;
}

void cache_link(struct exit_record *exit, struct fragment *to)
{
    if (exit->linked || to->dead)
        return;
    uint8_t *branch = exit_branch(exit), *stub;
    if (branch && fits_rel32(branch + 4, to->cache_pc)) {
        store_rel32(branch, to->cache_pc);
    } else if ((stub = stub_of(exit))) {
        /* Too far for rel32: the stub becomes jmp *0(%rip); .quad target. */
        uint8_t far[14] = {0xff, 0x25, 0, 0, 0, 0};
        uint64_t target = (uint64_t)to->cache_pc;
        memcpy(far + 6, &target, 8);
        uint8_t expect[STUB_SIZE]; /* what unlinking puts back */
        write_exit_stub(expect, stub, exit_id(exit));
        if (memcmp(stub, expect, sizeof expect))
            dbo_fatal("exit stub at %p is not like the others", (void *)stub);
        memcpy(stub, far, sizeof far);
        exit->linked_far = true;
    } else {
        return;
    }
    if (!exit_from(exit)->serial)
        dbo_fatal("linked exit of a fragment without a serial number");
    exit->linked = true;
    exit->next_incoming = to->incoming;
    to->incoming = exit_id(exit);
}

void cache_link_at_birth(struct exit_record *exit, struct fragment *to)
{
    if (to)
        cache_link(exit, to);
    if (!exit->linked)
        store_rel32(exit_branch(exit), stub_of(exit));
}

/* The fragment a linked exit goes to, read off its code: the record does
 * not keep it (8 bytes for each of a large program's 100 000s of exits,
 * most never linked), and only unlinking asks. */
static struct fragment *linked_to(const struct exit_record *e)
{
    uint64_t dest;
    if (e->linked_far) {
        memcpy(&dest, exit_stub(e) + 6, 8);
    } else {
        int32_t rel;
        memcpy(&rel, exit_branch(e), 4);
        dest = (uint64_t)(exit_branch(e) + 4 + rel);
    }
    struct fragment *to = cache_fragment_at(dest);
    if (!to || (uint64_t)to->cache_pc != dest) /* into a fragment's middle */
        to = cache_inner_entry_at(dest);
    if (!to)
        dbo_fatal("linked exit to %#lx has no fragment there", (unsigned long)dest);
    return to;
}

static void unlink_exit(struct exit_record *e)
{
    if (!e->linked)
        return;
    if (e->linked_far)
        write_exit_stub(exit_stub(e), exit_stub(e), exit_id(e));
    else
        store_rel32(exit_branch(e), stub_of(e));
    e->linked = e->linked_far = false;
}

void unlink_fragment(struct fragment *frag)
{
    for (struct exit_record *e = exit_by_id(frag->incoming); e;) {
        struct exit_record *next = exit_by_id(e->next_incoming);
        unlink_exit(e);
        e->next_incoming = 0;
        e = next;
    }
    frag->incoming = 0;
    /* Its own links leave their targets' incoming lists. */
    for (uint32_t i = 0; i < frag->n_exits; i++) {
        struct exit_record *e = &fragment_exits(frag)[i];
        if (!e->linked)
            continue;
        uint32_t id = exit_id(e);
        for (uint32_t *p = &linked_to(e)->incoming; *p; p = &exit_by_id(*p)->next_incoming) {
            if (*p == id) {
                *p = e->next_incoming;
                break;
            }
        }
        /* its code stays as it was: the fragment is dead */
        e->linked = e->linked_far = false;
    }
}
