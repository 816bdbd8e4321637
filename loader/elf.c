/* Mapping ELF images: the program, its PT_INTERP, static and static-pie
 * binaries alike. Host mappings never carry PROT_EXEC; the guest's view of
 * each segment is recorded in the syscall layer's memory map. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "loader/loader.h"
#include "loader/loader_internal.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"

#define PAGE 4096ul
#define PAGE_DOWN(x) ((x) & ~(PAGE - 1))
#define PAGE_UP(x) (((x) + PAGE - 1) & ~(PAGE - 1))
#define BRK_RESERVE (512ul << 20)

static int prot_of(uint32_t p_flags)
{
    return (p_flags & PF_R ? PROT_READ : 0) | (p_flags & PF_W ? PROT_WRITE : 0) |
           (p_flags & PF_X ? PROT_EXEC : 0);
}

void map_elf(const char *path, struct elf_image *img, uint64_t reserve_after)
{
    memset(img, 0, sizeof *img);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        dbo_fatal("%s: %s", path, strerror(errno));
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) != sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 256)
        dbo_fatal("%s: not a loadable x86-64 ELF file", path);
    Elf64_Phdr ph[256];
    size_t phsize = eh.e_phnum * sizeof(Elf64_Phdr);
    if (pread(fd, ph, phsize, eh.e_phoff) != (ssize_t)phsize)
        dbo_fatal("%s: truncated program headers", path);

    uint64_t lo = UINT64_MAX, hi = 0;
    img->exec_stack = true; /* the kernel's default without PT_GNU_STACK */
    for (int i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD) {
            if (ph[i].p_vaddr < lo)
                lo = ph[i].p_vaddr;
            if (ph[i].p_vaddr + ph[i].p_memsz > hi)
                hi = ph[i].p_vaddr + ph[i].p_memsz;
        } else if (ph[i].p_type == PT_GNU_STACK) {
            img->exec_stack = ph[i].p_flags & PF_X;
        } else if (ph[i].p_type == PT_INTERP) {
            size_t n =
                ph[i].p_filesz < sizeof img->interp ? ph[i].p_filesz : sizeof img->interp - 1;
            if (pread(fd, img->interp, n, ph[i].p_offset) != (ssize_t)n)
                dbo_fatal("%s: truncated PT_INTERP", path);
            img->interp[n] = 0;
        }
    }
    if (lo == UINT64_MAX)
        dbo_fatal("%s: no loadable segments", path);
    lo = PAGE_DOWN(lo);
    hi = PAGE_UP(hi);
    uint64_t span = hi - lo + reserve_after;

    /* Reserve the whole span first, so segments and holes stay together. */
    void *want = eh.e_type == ET_EXEC ? (void *)lo : NULL;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (want ? MAP_FIXED_NOREPLACE : 0);
    void *base = mmap(want, span, PROT_NONE, flags, -1, 0);
    if (base == MAP_FAILED)
        dbo_fatal("%s: cannot map %#" PRIx64 "-%#" PRIx64 ": %s", path, lo, lo + span,
                  strerror(errno));
    img->bias = (uint64_t)base - lo;
    guest_vm_record((uint64_t)base, span, PROT_NONE);

    for (int i = 0; i < eh.e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        int prot = prot_of(ph[i].p_flags);
        uint64_t seg = img->bias + ph[i].p_vaddr;
        uint64_t page = PAGE_DOWN(seg);
        uint64_t file_end = seg + ph[i].p_filesz, mem_end = seg + ph[i].p_memsz;
        int host = guest_vm_host_prot(prot);
        if (ph[i].p_filesz) {
            /* A bss that starts mid-page: the file bytes past p_filesz are
             * zeroed, in a mapping writable until then (only that one:
             * an mprotect a segment cost 5 us of every start) */
            bool bss_tail = mem_end > file_end && PAGE_UP(file_end) > file_end;
            if (mmap((void *)page, file_end - page, bss_tail ? host | PROT_WRITE : host,
                     MAP_PRIVATE | MAP_FIXED, fd, ph[i].p_offset - (seg - page)) == MAP_FAILED)
                dbo_fatal("%s: cannot map segment %d: %s", path, i, strerror(errno));
            if (bss_tail) {
                memset((void *)file_end, 0, PAGE_UP(file_end) - file_end);
                if (!(host & PROT_WRITE))
                    mprotect((void *)page, file_end - page, host);
            }
        }
        uint64_t anon = PAGE_UP(ph[i].p_filesz ? file_end : seg);
        if (PAGE_UP(mem_end) > anon &&
            mmap((void *)anon, PAGE_UP(mem_end) - anon, host,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
            dbo_fatal("%s: cannot map bss of segment %d: %s", path, i, strerror(errno));
        guest_vm_record(page, PAGE_UP(mem_end) - page, prot);
    }

    img->entry = img->bias + eh.e_entry;
    img->phnum = eh.e_phnum;
    img->end = img->bias + hi;
    for (int i = 0; i < eh.e_phnum; i++)
        if (ph[i].p_type == PT_PHDR)
            img->phdr = img->bias + ph[i].p_vaddr;
    for (int i = 0; i < eh.e_phnum && !img->phdr; i++)
        if (ph[i].p_type == PT_LOAD && ph[i].p_offset <= eh.e_phoff &&
            eh.e_phoff + phsize <= ph[i].p_offset + ph[i].p_filesz)
            img->phdr = img->bias + ph[i].p_vaddr + (eh.e_phoff - ph[i].p_offset);
    close(fd);
}

char *guest_exe_path;
uint64_t guest_cmdline_start, guest_cmdline_end;

/* What /proc shows of the process: its name (comm) is the executed file's,
 * as the kernel sets it at execve; cmdline and environ are the guest's
 * strings. Pointing the kernel at them needs CAP_SYS_RESOURCE; without
 * it the gate answers opens of /proc/self/cmdline itself. */
static void describe_process(const char *execfn, const struct guest_start *start)
{
    const char *base = strrchr(execfn, '/');
    prctl(PR_SET_NAME, base ? base + 1 : execfn, 0, 0, 0);
    guest_cmdline_start = start->arg_start;
    guest_cmdline_end = start->arg_end;
    struct {
        int start_opt, end_opt;
        uint64_t start, end;
    } ranges[] = {{PR_SET_MM_ARG_START, PR_SET_MM_ARG_END, start->arg_start, start->arg_end},
                  {PR_SET_MM_ENV_START, PR_SET_MM_ENV_END, start->env_start, start->env_end}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        /* The kernel wants start < end at every step: try both orders. */
        int set_start = prctl(PR_SET_MM, ranges[i].start_opt, ranges[i].start, 0, 0);
        if (set_start != 0 && errno == EPERM)
            return; /* not allowed: no use asking again (five more calls) */
        if (set_start != 0 || prctl(PR_SET_MM, ranges[i].end_opt, ranges[i].end, 0, 0) != 0) {
            prctl(PR_SET_MM, ranges[i].end_opt, ranges[i].end, 0, 0);
            prctl(PR_SET_MM, ranges[i].start_opt, ranges[i].start, 0, 0);
        }
    }
}

void loader_load(const char *path, char **argv, char **envp, struct guest_start *start)
{
    const char *execfn = path;
    char *interp_path = NULL;
    char **args = argv;
    /* #! scripts, nested up to 4 deep as the kernel allows. */
    for (int depth = 0;; depth++) {
        char interp[4096], arg[256];
        if (!parse_shebang(path, interp, sizeof interp, arg, sizeof arg))
            break;
        if (depth == 4)
            dbo_fatal("%s: too many levels of #! interpreters", execfn);
        int argc = 0;
        while (args[argc])
            argc++;
        char **next = calloc(argc + 3, sizeof *next);
        int n = 0;
        next[n++] = strdup(interp);
        if (arg[0])
            next[n++] = strdup(arg);
        next[n++] = strdup(path);
        for (int i = 1; i < argc; i++)
            next[n++] = args[i];
        args = next;
        int err;
        const char *why = loader_check_executable(interp, &err);
        if (why)
            dbo_fatal("%s: bad interpreter %s: %s", execfn, interp, why);
        path = strdup(interp);
    }
    char *real = realpath(path, NULL);
    guest_exe_path = real ? real : strdup(path);

    struct elf_image exe, ld;
    map_elf(path, &exe, BRK_RESERVE);
    brk_init(exe.end, BRK_RESERVE);
    if (exe.interp[0]) {
        int err;
        const char *why = loader_check_executable(exe.interp, &err);
        if (why)
            dbo_fatal("%s: bad ELF interpreter %s: %s", path, exe.interp, why);
        map_elf(exe.interp, &ld, 0);
        interp_path = exe.interp;
    }
    start->stack = build_initial_stack(args, envp, execfn, &exe, interp_path ? &ld : NULL, start);
    describe_process(execfn, start);
    start->entry = interp_path ? ld.entry : exe.entry;
    start->exe_path = guest_exe_path;
}
