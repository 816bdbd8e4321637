/* The guest's brk, emulated in a region reserved right after the program
 * image (dbo's own malloc keeps the real brk). */
#include <sys/mman.h>

#include "loader/loader.h"
#include "loader/loader_internal.h"
#include "syscall/syscall.h"

#define PAGE 4096ul
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))

static uint64_t brk_start, brk_cur, brk_limit, brk_mapped;

void brk_init(uint64_t start, uint64_t reserved)
{
    brk_start = brk_cur = brk_mapped = start;
    brk_limit = start + reserved;
}

uint64_t loader_brk(uint64_t requested)
{
    if (requested < brk_start || requested > brk_limit)
        return brk_cur;
    uint64_t end = PAGE_UP(requested);
    if (end > brk_mapped) {
        if (mprotect((void *)brk_mapped, end - brk_mapped, PROT_READ | PROT_WRITE) < 0)
            return brk_cur;
        guest_vm_record(brk_mapped, end - brk_mapped, PROT_READ | PROT_WRITE);
    } else if (end < brk_mapped) {
        /* Shrinking: drop the pages so a later grow sees zeros again. */
        madvise((void *)end, brk_mapped - end, MADV_DONTNEED);
        mprotect((void *)end, brk_mapped - end, PROT_NONE);
        guest_vm_record(end, brk_mapped - end, PROT_NONE);
    }
    brk_mapped = end;
    brk_cur = requested;
    return brk_cur;
}
