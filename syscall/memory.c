/* The guest's memory map as the guest sees it, and the emulation of the
 * calls that change it. Host mappings never carry PROT_EXEC (DESIGN.md
 * decision 2): the guest's executable bit lives only here, and only the
 * code cache is executable. The guest may not map over, unmap or change
 * runtime memory (decision 9). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "cache/cache.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "syscall/syscall_internal.h"
#include "translator/translator.h"

#define PAGE 4096ul
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))

struct region {
    uint64_t start, end;
    int prot; /* as the guest asked, PROT_EXEC included */
};

static struct region *regions;
static size_t n_regions, cap_regions;

/* The region find() found last: the translator asks about the same one
 * several times a fragment (executable? how far? writable?). Reset when
 * the map changes. */
static size_t last_found = SIZE_MAX;

/* Removes [start, end) from the map, splitting regions that straddle it. */
static void carve(uint64_t start, uint64_t end)
{
    last_found = SIZE_MAX;
    size_t out = 0;
    struct region extra = {0, 0, 0};
    bool have_extra = false;
    for (size_t i = 0; i < n_regions; i++) {
        struct region r = regions[i];
        if (r.end <= start || r.start >= end) {
            regions[out++] = r;
            continue;
        }
        if (r.start < start)
            regions[out++] = (struct region){r.start, start, r.prot};
        if (r.end > end) {
            if (r.start < start) { /* split in two: the tail goes in after */
                extra = (struct region){end, r.end, r.prot};
                have_extra = true;
            } else {
                regions[out++] = (struct region){end, r.end, r.prot};
            }
        }
    }
    n_regions = out;
    if (have_extra) {
        if (n_regions == cap_regions) {
            cap_regions = cap_regions ? 2 * cap_regions : 256;
            regions = realloc(regions, cap_regions * sizeof *regions);
        }
        size_t i = n_regions;
        while (i > 0 && regions[i - 1].start > extra.start) {
            regions[i] = regions[i - 1];
            i--;
        }
        regions[i] = extra;
        n_regions++;
    }
}

void guest_vm_forget(uint64_t start, uint64_t len)
{
    carve(start, start + PAGE_UP(len));
}

void guest_vm_record(uint64_t start, uint64_t len, int prot)
{
    uint64_t end = start + PAGE_UP(len);
    carve(start, end);
    if (n_regions == cap_regions) {
        cap_regions = cap_regions ? 2 * cap_regions : 256;
        regions = realloc(regions, cap_regions * sizeof *regions);
    }
    size_t i = n_regions;
    while (i > 0 && regions[i - 1].start > start) {
        regions[i] = regions[i - 1];
        i--;
    }
    regions[i] = (struct region){start, end, prot};
    n_regions++;
    last_found = SIZE_MAX;
}

static struct region *find(uint64_t addr)
{
    if (last_found < n_regions && regions[last_found].start <= addr &&
        addr < regions[last_found].end)
        return &regions[last_found];
    size_t lo = 0, hi = n_regions;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (regions[mid].end <= addr)
            lo = mid + 1;
        else if (regions[mid].start > addr)
            hi = mid;
        else
            return &regions[last_found = mid];
    }
    return NULL;
}

int guest_vm_prot(uint64_t addr)
{
    struct region *r = find(addr);
    return r ? r->prot : -1;
}

bool guest_vm_executable(uint64_t addr)
{
    struct region *r = find(addr);
    return r && (r->prot & PROT_EXEC);
}

uint64_t guest_vm_exec_extent(uint64_t addr)
{
    uint64_t end = addr;
    for (struct region *r = find(addr); r && (r->prot & PROT_EXEC) && r->start <= end;) {
        end = r->end;
        if (end - addr >= 16)
            break;
        r = find(end);
    }
    return end - addr;
}

bool guest_vm_accessible(const void *ptr, uint64_t len, int prot)
{
    uint64_t addr = (uint64_t)ptr, end = addr + len;
    if (!ptr || end < addr)
        return false;
    while (addr < end) {
        struct region *r = find(addr);
        if (!r || (r->prot & prot) != prot)
            return false;
        addr = r->end;
    }
    return true;
}

int guest_vm_host_prot(int guest_prot)
{
    int prot = guest_prot & ~(PROT_EXEC | GUEST_VM_SHARED);
    if (guest_prot & PROT_EXEC)
        prot |= PROT_READ; /* the translator must read what it translates */
    return prot;
}

/* Is any page of [start, end) mapped by somebody other than the guest?
 * Parts the guest map covers are the guest's; for the rest, ask the kernel. */
static bool overlaps_runtime(uint64_t start, uint64_t end)
{
    if (cache_owns(start, end - start))
        return true;
    bool uncovered = false;
    for (uint64_t a = start; a < end;) {
        struct region *r = find(a);
        if (!r) {
            uncovered = true;
            break;
        }
        a = r->end;
    }
    if (!uncovered)
        return false;
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return true;
    char line[512];
    bool hit = false;
    while (!hit && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2 || hi <= start || lo >= end)
            continue;
        /* A mapping overlaps: fine only if the guest map covers the overlap. */
        uint64_t a = lo > start ? lo : start, b = hi < end ? hi : end;
        while (a < b) {
            struct region *r = find(a);
            if (!r) {
                hit = true;
                break;
            }
            a = r->end;
        }
    }
    fclose(maps);
    return hit;
}

/* Executable code in a shared mapping may be rewritten through another view
 * (a memfd mapped twice, RW and RX) where no write protection can see it:
 * its fragments check their own bytes instead. */
static void note_aliased_code(uint64_t start, uint64_t len, int prot)
{
    if ((prot & PROT_EXEC) && (prot & GUEST_VM_SHARED))
        cache_mark_volatile(start, len);
}

static void flush_if_code(struct guest_context *ctx, uint64_t start, uint64_t len)
{
    (void)ctx;
    translator_invalidate(start, len);
    table_jump_memory_changes(start, len); /* a jump table taken as constant */
}

long emulate_mmap(struct guest_context *ctx, uint64_t addr, uint64_t len, int prot, int flags,
                  int fd, uint64_t off)
{
    if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && len &&
        overlaps_runtime(addr & ~(PAGE - 1), PAGE_UP(addr + len)))
        return (flags & MAP_FIXED_NOREPLACE) ? -EEXIST : -ENOMEM;
    if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
        flush_if_code(ctx, addr, len);
    long r = syscall_raw(SYS_mmap, addr, len, guest_vm_host_prot(prot), flags, fd, off);
    if (r < 0 && r > -4096)
        return r;
    bool shared = (flags & MAP_TYPE) == MAP_SHARED || (flags & MAP_TYPE) == MAP_SHARED_VALIDATE;
    guest_vm_record(r, len, prot | (shared ? GUEST_VM_SHARED : 0));
    note_aliased_code(r, len, prot | (shared ? GUEST_VM_SHARED : 0));
    return r;
}

long emulate_mprotect(struct guest_context *ctx, uint64_t addr, uint64_t len, int prot)
{
    if (len && overlaps_runtime(addr, PAGE_UP(addr + len)))
        return -EACCES;
    flush_if_code(ctx, addr, len);
    long r = syscall_raw(SYS_mprotect, addr, len, guest_vm_host_prot(prot), 0, 0, 0);
    if (r < 0)
        return r;
    int old = guest_vm_prot(addr);
    if (old >= 0)
        prot |= old & GUEST_VM_SHARED;
    guest_vm_record(addr, len, prot);
    note_aliased_code(addr, len, prot);
    return r;
}

long emulate_munmap(struct guest_context *ctx, uint64_t addr, uint64_t len)
{
    if (len && overlaps_runtime(addr, PAGE_UP(addr + len)))
        return -EINVAL;
    flush_if_code(ctx, addr, len);
    long r = syscall_raw(SYS_munmap, addr, len, 0, 0, 0, 0);
    if (r < 0)
        return r;
    guest_vm_forget(addr, len);
    return r;
}

long emulate_mremap(struct guest_context *ctx, uint64_t old, uint64_t old_len, uint64_t new_len,
                    int flags, uint64_t new_addr)
{
    if (overlaps_runtime(old, PAGE_UP(old + (old_len ? old_len : 1))))
        return -EINVAL;
    if ((flags & MREMAP_FIXED) && overlaps_runtime(new_addr, PAGE_UP(new_addr + new_len)))
        return -EINVAL;
    struct region *r = find(old);
    int prot = r ? r->prot : PROT_READ | PROT_WRITE;
    flush_if_code(ctx, old, old_len);
    if (flags & MREMAP_FIXED)
        flush_if_code(ctx, new_addr, new_len);
    long res = syscall_raw(SYS_mremap, old, old_len, new_len, flags, new_addr, 0);
    if (res < 0 && res > -4096)
        return res;
    if (!(flags & MREMAP_DONTUNMAP))
        guest_vm_forget(old, old_len);
    guest_vm_record(res, new_len, prot);
    return res;
}

long emulate_madvise(struct guest_context *ctx, uint64_t addr, uint64_t len, int advice)
{
    if (len && overlaps_runtime(addr, PAGE_UP(addr + len)))
        return -EINVAL;
    long r = syscall_raw(SYS_madvise, addr, len, advice, 0, 0, 0);
    if (r == 0 && (advice == MADV_DONTNEED || advice == MADV_REMOVE || advice == MADV_FREE))
        flush_if_code(ctx, addr, len);
    return r;
}
