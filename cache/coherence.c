/* Write protection of guest pages that hold translated code. */
#include <sys/mman.h>

#include "cache/cache_internal.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"

#define VOLATILE_AFTER 2 /* write faults before a page stops being protected */

static struct u64map protected_pages; /* page + 1 -> 1 */
static struct u64map written_pages;   /* page + 1 -> write faults so far */

bool cache_page_volatile(uint64_t addr)
{
    uint64_t n;
    return u64map_get(&written_pages, addr / PAGE + 1, &n) && n >= VOLATILE_AFTER;
}

void cache_mark_volatile(uint64_t start, uint64_t len)
{
    for (uint64_t pg = start / PAGE; pg < (start + len + PAGE - 1) / PAGE; pg++)
        u64map_put(&written_pages, pg + 1, VOLATILE_AFTER);
}

bool cache_page_protected(uint64_t addr)
{
    return u64map_get(&protected_pages, addr / PAGE + 1, NULL);
}

void cache_protect_code(const struct fragment *frag)
{
    uint64_t pages[MAX_FRAGMENT_PAGES];
    size_t n = fragment_pages(frag, pages);
    for (size_t i = 0; i < n; i++) {
        uint64_t pg = pages[i];
        int prot = guest_vm_prot(pg * PAGE); /* first: most code is not writable */
        if (prot < 0 || !(prot & PROT_WRITE))
            continue; /* the guest must mprotect first, and that invalidates */
        if (u64map_get(&protected_pages, pg + 1, NULL) || cache_page_volatile(pg * PAGE))
            continue;
        mprotect((void *)(pg * PAGE), PAGE, guest_vm_host_prot(prot) & ~PROT_WRITE);
        u64map_put(&protected_pages, pg + 1, 1);
    }
}

static void unprotect_page(uint64_t pg)
{
    if (!u64map_remove(&protected_pages, pg + 1))
        return;
    int prot = guest_vm_prot(pg * PAGE);
    if (prot >= 0)
        mprotect((void *)(pg * PAGE), PAGE, guest_vm_host_prot(prot));
}

void unprotect_range(uint64_t start, uint64_t end)
{
    if (!protected_pages.count)
        return;
    uint64_t first = start / PAGE, last = (end - 1) / PAGE;
    if (last - first < protected_pages.cap) {
        for (uint64_t pg = first; pg <= last; pg++)
            unprotect_page(pg);
        return;
    }
    for (size_t i = 0; i < protected_pages.cap;) {
        uint64_t key = protected_pages.slots[i].key;
        if (key && key - 1 >= first && key - 1 <= last)
            unprotect_page(key - 1); /* shifts a later key into slot i */
        else
            i++;
    }
}

bool cache_write_fault(uint64_t addr, void (*on_dead)(struct fragment *, void *), void *arg)
{
    uint64_t pg = addr / PAGE;
    if (!u64map_get(&protected_pages, pg + 1, NULL))
        return false;
    uint64_t n = 0;
    u64map_get(&written_pages, pg + 1, &n);
    u64map_put(&written_pages, pg + 1, n + 1);
    dbo_stats.code_write_faults++;
    cache_invalidate_range(pg * PAGE, PAGE, on_dead, arg);
    unprotect_page(pg);
    return true;
}

void coherence_reset(void)
{
    while (protected_pages.count) {
        for (size_t i = 0; i < protected_pages.cap; i++)
            if (protected_pages.slots[i].key)
                unprotect_page(protected_pages.slots[i].key - 1);
    }
}

bool cache_unprotect_all(void (*on_dead)(struct fragment *, void *), void *arg)
{
    if (!protected_pages.count)
        return false;
    while (protected_pages.count) {
        for (size_t i = 0; i < protected_pages.cap; i++) {
            uint64_t key = protected_pages.slots[i].key;
            if (key) {
                cache_invalidate_range((key - 1) * PAGE, PAGE, on_dead, arg);
                unprotect_page(key - 1);
            }
        }
    }
    return true;
}
