/* Helper for tests/noexec.sh (not a differential test: its output differs
 * under dbo by design). Reports whether the pages holding guest code are
 * executable, by reading /proc/self/maps:
 *   - the mapping holding main,
 *   - the mapping holding libc's printf (the program's own copy if static),
 *   - the mapping holding the dynamic loader's code (found from AT_BASE),
 *   - how many executable file mappings lie where the guest's objects
 *     (program, libraries, loader) are loaded.
 * Natively all of these are executable; under dbo, which runs only
 * translated copies, none may be. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

struct mapping {
    uintptr_t lo, hi;
    char perms[5];
    char path[512];
};

static struct mapping maps[4096];
static int nmaps;

static void read_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    if (!f) {
        perror("/proc/self/maps");
        exit(2);
    }
    while (nmaps < 4096 && fgets(line, sizeof line, f)) {
        struct mapping *m = &maps[nmaps];
        int off = 0;
        m->path[0] = 0;
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &m->lo, &m->hi, m->perms, &off) < 3)
            continue;
        if (off > 0) {
            char *p = line + off;
            p[strcspn(p, "\n")] = 0;
            snprintf(m->path, sizeof m->path, "%s", p);
        }
        nmaps++;
    }
    fclose(f);
}

static const struct mapping *find(uintptr_t addr)
{
    for (int i = 0; i < nmaps; i++)
        if (addr >= maps[i].lo && addr < maps[i].hi)
            return &maps[i];
    return NULL;
}

static void report(const char *what, uintptr_t addr)
{
    const struct mapping *m = find(addr);
    if (!m)
        printf("%s: unmapped\n", what);
    else
        printf("%s: x=%s\n", what, m->perms[2] == 'x' ? "yes" : "no");
}

/* Guest objects: every object the dynamic linker (or the static startup
 * code) knows about, i.e. the program, its libraries and the loader, with
 * the address span their segments occupy. Spans, not file names: dbo's own
 * copies of libc and ld.so are mapped from the same files, executable, and
 * are not guest mappings. */
struct span {
    uintptr_t lo, hi;
};
static struct span spans[64];
static int nspans;
static uintptr_t loader_code;

static int visit(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    uintptr_t base = getauxval(AT_BASE), lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (start < lo)
            lo = start;
        if (start + ph->p_memsz > hi)
            hi = start + ph->p_memsz;
        if ((ph->p_flags & PF_X) && base != 0 && info->dlpi_addr == base)
            loader_code = start;
    }
    /* Only objects that come from a file (not the vdso). */
    const struct mapping *m = find(lo);
    if (lo < hi && m && m->path[0] == '/' && nspans < 64)
        spans[nspans++] = (struct span){lo & ~(uintptr_t)4095, hi};
    return 0;
}

int main(void)
{
    read_maps();
    report("main", (uintptr_t)&main);

    /* libc's own printf, not a PLT stub in the program */
    void *pf = dlsym(RTLD_NEXT, "printf");
    if (!pf)
        pf = (void *)&printf;
    report("printf", (uintptr_t)pf);

    dl_iterate_phdr(visit, NULL);
    if (getauxval(AT_BASE) == 0)
        printf("loader: none\n");
    else if (loader_code == 0)
        printf("loader: not found\n");
    else
        report("loader", loader_code);

    /* executable file-backed mappings inside the guest objects' spans */
    int xcount = 0;
    for (int i = 0; i < nmaps; i++) {
        if (maps[i].perms[2] != 'x' || maps[i].path[0] != '/')
            continue;
        for (int g = 0; g < nspans; g++)
            if (maps[i].lo < spans[g].hi && maps[i].hi > spans[g].lo) {
                xcount++;
                break;
            }
    }
    printf("guest objects: %d\n", nspans);
    printf("executable guest file mappings: %d\n", xcount);
    return 0;
}
