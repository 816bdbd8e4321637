/* The initial process state the loader hands to the guest: argv, envp and
 * the auxiliary vector. Under a translator these are built by the
 * translator, not by the kernel, so every field a program may read must
 * look native. Prints only values that are stable between runs. */
#define _GNU_SOURCE
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

static const ElfW(Phdr) * first_phdr;
static size_t first_phnum;

static int first_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    first_phdr = info->dlpi_phdr;
    first_phnum = info->dlpi_phnum;
    return 1; /* the main program comes first */
}

static const char *yesno(int c)
{
    return c ? "yes" : "no";
}

int main(int argc, char **argv, char **envp)
{
    printf("argc %d\n", argc);
    const char *base = strrchr(argv[0], '/');
    printf("argv[0] basename: %s\n", base ? base + 1 : argv[0]);
    for (int i = 1; i < argc; i++)
        printf("argv[%d] = \"%s\" (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc] is NULL: %s\n", yesno(argv[argc] == NULL));
    printf("envp == environ: %s\n", yesno(envp == environ));
    printf("envp follows argv: %s\n", yesno(envp == argv + argc + 1));
    for (char **e = envp; *e; e++)
        printf("env: %s\n", *e);

    printf("AT_PAGESZ %lu\n", getauxval(AT_PAGESZ));
    printf("AT_ENTRY != 0: %s\n", yesno(getauxval(AT_ENTRY) != 0));
    extern char _start[];
    printf("AT_ENTRY == _start: %s\n", yesno(getauxval(AT_ENTRY) == (unsigned long)_start));
    const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
    printf("AT_RANDOM != 0: %s\n", yesno(rnd != NULL));
    if (rnd) {
        unsigned x = 0;
        for (int i = 0; i < 16; i++)
            x |= rnd[i]; /* must be readable */
        printf("AT_RANDOM readable: yes\n");
        (void)x;
    }
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    printf("AT_EXECFN set: %s\n", yesno(execfn != NULL));
    if (execfn) {
        const char *eb = strrchr(execfn, '/');
        printf("AT_EXECFN basename: %s\n", eb ? eb + 1 : execfn);
        printf("AT_EXECFN == argv[0]: %s\n", yesno(strcmp(execfn, argv[0]) == 0));
    }
    const char *platform = (const char *)getauxval(AT_PLATFORM);
    printf("AT_PLATFORM %s\n", platform ? platform : "(none)");
    printf("AT_UID/GID match: %s %s\n", yesno(getauxval(AT_UID) == getuid()),
           yesno(getauxval(AT_GID) == getgid()));
    printf("AT_EUID/EGID match: %s %s\n", yesno(getauxval(AT_EUID) == geteuid()),
           yesno(getauxval(AT_EGID) == getegid()));
    printf("AT_SECURE %lu\n", getauxval(AT_SECURE));
    printf("AT_CLKTCK %lu\n", getauxval(AT_CLKTCK));
    printf("AT_HWCAP nonzero: %s\n", yesno(getauxval(AT_HWCAP) != 0));
    printf("AT_BASE set (has interpreter): %s\n", yesno(getauxval(AT_BASE) != 0));

    dl_iterate_phdr(first_object, NULL);
    printf("AT_PHDR matches main object's phdrs: %s\n",
           yesno(getauxval(AT_PHDR) == (unsigned long)first_phdr));
    printf("AT_PHNUM matches: %s (%s)\n", yesno(getauxval(AT_PHNUM) == first_phnum),
           getauxval(AT_PHNUM) > 3 ? ">3" : "<=3");
    printf("AT_PHENT %lu\n", getauxval(AT_PHENT));

    char exe[PATH_MAX], real[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n < 0) {
        printf("readlink /proc/self/exe failed\n");
    } else {
        exe[n] = 0;
        if (!realpath(argv[0], real))
            strcpy(real, "?");
        printf("/proc/self/exe == realpath(argv[0]): %s\n", yesno(strcmp(exe, real) == 0));
    }
    printf("getenv(\"PATH\") = %s\n", getenv("PATH") ? getenv("PATH") : "(unset)");
    return argc;
}
