/* backtrace() walks the stack with the unwinder (.eh_frame and the return
 * addresses the program pushed); under a translator those must be the
 * guest's own. Frames are named from the program's ELF symbol table (read
 * from argv[0], so no -rdynamic is needed and static builds work too);
 * frames outside the program print as "-". Also a backtrace from a signal
 * handler (through the sigreturn trampoline), from a thread, and what
 * backtrace_symbols makes of it (the names it knows: exported ones). */
#define _GNU_SOURCE
#include <elf.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const Elf64_Sym *syms;
static const char *strtab;
static size_t nsyms;
static uintptr_t bias;

static int load_symbols(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat st;
    fstat(fd, &st);
    const unsigned char *f = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f == MAP_FAILED)
        return -1;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(f + eh->e_shoff);
    for (int i = 0; i < eh->e_shnum; i++)
        if (sh[i].sh_type == SHT_SYMTAB) {
            syms = (const Elf64_Sym *)(f + sh[i].sh_offset);
            nsyms = sh[i].sh_size / sizeof(Elf64_Sym);
            strtab = (const char *)(f + sh[sh[i].sh_link].sh_offset);
        }
    return syms ? 0 : -1;
}

static const Elf64_Sym *by_name(const char *name)
{
    for (size_t i = 0; i < nsyms; i++)
        if (ELF64_ST_TYPE(syms[i].st_info) == STT_FUNC && !strcmp(strtab + syms[i].st_name, name))
            return &syms[i];
    return NULL;
}

/* the function of the program containing a return address, or "-" */
static const char *name_of(void *ret)
{
    uintptr_t a = (uintptr_t)ret - 1 - bias; /* inside the call instruction */
    for (size_t i = 0; i < nsyms; i++) {
        const Elf64_Sym *s = &syms[i];
        if (ELF64_ST_TYPE(s->st_info) == STT_FUNC && s->st_value && a >= s->st_value &&
            a < s->st_value + (s->st_size ? s->st_size : 1))
            return strtab + s->st_name;
    }
    return "-";
}

/* names up to the program's entry function; the C library's frames
 * outside it (which clone variant started a thread, say) are only counted */
static void print_trace(const char *what, void **frames, int n)
{
    printf("%s: %d frames:", what, n);
    int i = 0;
    while (i < n) {
        const char *name = name_of(frames[i++]);
        printf(" %s", name);
        if (!strcmp(name, "main") || !strcmp(name, "thread_main"))
            break;
    }
    printf(" +%d outer\n", n - i);
}

/* what backtrace_symbols says: the symbol in "module(symbol+off) [addr]"
 * when it knows one (exported symbols only), else "?" */
static void print_symbols(void **frames, int n)
{
    char **s = backtrace_symbols(frames, n);
    if (!s) {
        printf("backtrace_symbols failed\n");
        return;
    }
    int with_addr = 0;
    for (int i = 0; i < n; i++)
        with_addr += strstr(s[i], "[0x") != NULL;
    printf("backtrace_symbols:");
    for (int i = 0; i < n; i++) {
        if (!strcmp(name_of(frames[i]), "thread_main")) {
            printf(" (+%d)", n - i); /* stop at the thread's entry, see above */
            break;
        }
        const char *open = strchr(s[i], '('), *plus = open ? strchr(open, '+') : NULL;
        if (open && plus && plus > open + 1)
            printf(" %.*s", (int)(plus - open - 1), open + 1);
        else
            printf(" ?");
    }
    printf("; %d of %d with an address\n", with_addr, n);
    free(s);
}

#define NOINLINE __attribute__((noinline, noclone))
static volatile int sink;

NOINLINE static int leaf(int mode)
{
    void *frames[64];
    int n = backtrace(frames, 64);
    if (mode == 1) {
        print_trace("recursive", frames, n);
    } else {
        print_trace(mode == 3 ? "in a thread" : "plain", frames, n);
        print_symbols(frames, n);
    }
    return n + sink;
}

NOINLINE static int recurse(int depth)
{
    if (depth == 0)
        return leaf(1) + sink;
    return recurse(depth - 1) + sink;
}

NOINLINE static int middle(int mode)
{
    int r = mode == 2 ? recurse(12) : leaf(mode);
    return r + sink;
}

NOINLINE static int top(int mode)
{
    return middle(mode) + sink;
}

static void on_usr1(int sig)
{
    void *frames[64];
    int n = backtrace(frames, 64);
    (void)sig;
    print_trace("in a signal handler", frames, n);
}

NOINLINE static int raiser(void)
{
    raise(SIGUSR1);
    return sink;
}

NOINLINE static void *thread_main(void *arg)
{
    (void)arg;
    top(3);
    return NULL;
}

int main(int argc, char **argv)
{
    (void)argc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (load_symbols(argv[0]) != 0) {
        printf("no symbol table\n");
        return 0;
    }
    const Elf64_Sym *m = by_name("main");
    bias = (uintptr_t)main - m->st_value;

    top(0);
    top(2);
    signal(SIGUSR1, on_usr1);
    raiser();
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
    return 0;
}
