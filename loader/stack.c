/* The guest's initial stack: argc, argv, envp and the auxiliary vector, laid
 * out as the kernel does for a fresh process. */
#include <elf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "loader/loader.h"
#include "loader/loader_internal.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"

static uint64_t push_bytes(uint64_t *sp, const void *data, size_t len)
{
    *sp -= len;
    memcpy((void *)*sp, data, len);
    return *sp;
}

static uint64_t push_string(uint64_t *sp, const char *s)
{
    return push_bytes(sp, s, strlen(s) + 1);
}

uint64_t build_initial_stack(char **argv, char **envp, const char *execfn,
                             const struct elf_image *exe, const struct elf_image *interp,
                             struct guest_start *start)
{
    struct rlimit rl;
    uint64_t size = 8ul << 20;
    if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > size)
        size = rl.rlim_cur < (256ul << 20) ? rl.rlim_cur : 256ul << 20;
    int prot = PROT_READ | PROT_WRITE | (exe->exec_stack ? PROT_EXEC : 0);
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED)
        dbo_fatal("cannot allocate the guest stack");
    guest_vm_record((uint64_t)base, size, prot);

    uint64_t sp = (uint64_t)base + size - 16;
    int argc = 0, envc = 0;
    while (argv[argc])
        argc++;
    while (envp[envc])
        envc++;
    uint64_t execfn_at = push_string(&sp, execfn);
    uint64_t *env_at = calloc(envc + 1, sizeof *env_at);
    uint64_t *arg_at = calloc(argc + 1, sizeof *arg_at);
    start->env_end = sp;
    for (int i = envc - 1; i >= 0; i--)
        env_at[i] = push_string(&sp, envp[i]);
    start->env_start = start->arg_end = sp;
    for (int i = argc - 1; i >= 0; i--)
        arg_at[i] = push_string(&sp, argv[i]);
    start->arg_start = sp;
    uint64_t platform_at = push_string(&sp, "x86_64");
    unsigned char random_bytes[16];
    if (getrandom(random_bytes, sizeof random_bytes, 0) != sizeof random_bytes)
        dbo_fatal("getrandom failed");
    sp &= ~15ul;
    uint64_t random_at = push_bytes(&sp, random_bytes, sizeof random_bytes);

    uint64_t hwcap2 = getauxval(AT_HWCAP2);
    uint64_t aux[][2] = {
        {AT_SYSINFO_EHDR, getauxval(AT_SYSINFO_EHDR)},
        {AT_MINSIGSTKSZ, getauxval(AT_MINSIGSTKSZ)},
        {AT_HWCAP, getauxval(AT_HWCAP)},
        {AT_PAGESZ, 4096},
        {AT_CLKTCK, sysconf(_SC_CLK_TCK)},
        {AT_PHDR, exe->phdr},
        {AT_PHENT, sizeof(Elf64_Phdr)},
        {AT_PHNUM, exe->phnum},
        {AT_BASE, interp ? interp->bias : 0},
        {AT_FLAGS, 0},
        {AT_ENTRY, exe->entry},
        {AT_UID, getuid()},
        {AT_EUID, geteuid()},
        {AT_GID, getgid()},
        {AT_EGID, getegid()},
        {AT_SECURE, 0},
        {AT_RANDOM, random_at},
        {AT_HWCAP2, hwcap2},
        {AT_EXECFN, execfn_at},
        {AT_PLATFORM, platform_at},
        {AT_NULL, 0},
    };
    size_t naux = sizeof aux / sizeof aux[0];
    size_t words = 1 + argc + 1 + envc + 1 + 2 * naux;
    sp = (sp - words * 8) & ~15ul;
    uint64_t *w = (uint64_t *)sp;
    *w++ = argc;
    for (int i = 0; i < argc; i++)
        *w++ = arg_at[i];
    *w++ = 0;
    for (int i = 0; i < envc; i++)
        *w++ = env_at[i];
    *w++ = 0;
    memcpy(w, aux, sizeof aux);
    free(env_at);
    free(arg_at);
    return sp;
}
