/* Finding the program and judging whether it can run: PATH search, the
 * checks behind dbo's one-line errors, and #! scripts. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader/loader.h"
#include "loader/loader_internal.h"
#include "runtime/runtime.h"

static bool is_executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

char *loader_find_program(const char *name)
{
    if (!name[0]) {
        errno = ENOENT;
        return NULL;
    }
    if (strchr(name, '/'))
        return strdup(name);
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    int first_errno = ENOENT;
    for (const char *p = path;; p++) {
        const char *colon = strchr(p, ':');
        size_t dirlen = colon ? (size_t)(colon - p) : strlen(p);
        char *cand;
        if (asprintf(&cand, "%.*s%s%s", (int)dirlen, p, dirlen ? "/" : "", name) < 0)
            return NULL;
        if (is_executable_file(cand))
            return cand;
        if (access(cand, F_OK) == 0 && first_errno == ENOENT)
            first_errno = EACCES;
        free(cand);
        if (!colon)
            break;
        p = colon;
    }
    errno = first_errno;
    return NULL;
}

const char *elf_machine_name(int machine)
{
    switch (machine) {
    case EM_386: return "i386";
    case EM_ARM: return "arm";
    case EM_AARCH64: return "aarch64";
    case EM_RISCV: return "riscv";
    case EM_PPC64: return "ppc64";
    case EM_S390: return "s390";
    case EM_MIPS: return "mips";
    default: return "unknown machine";
    }
}

const char *loader_check_executable(const char *path, int *err)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        *err = errno;
        return strerror(errno);
    }
    if (S_ISDIR(st.st_mode)) {
        *err = EACCES;
        return "is a directory";
    }
    if (!S_ISREG(st.st_mode)) {
        *err = EACCES;
        return "not a regular file";
    }
    if (access(path, X_OK) < 0) {
        *err = EACCES;
        return "permission denied (not executable)";
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = errno;
        return strerror(errno);
    }
    unsigned char h[64] = {0};
    ssize_t n = pread(fd, h, sizeof h, 0);
    close(fd);
    *err = ENOEXEC;
    if (n >= 2 && h[0] == '#' && h[1] == '!')
        return NULL;
    if (n < 4 || memcmp(h, ELFMAG, SELFMAG) != 0)
        return "not an ELF executable";
    if (n < (ssize_t)sizeof(Elf64_Ehdr) || h[EI_CLASS] != ELFCLASS64)
        return h[EI_CLASS] == ELFCLASS32 ? "32-bit ELF; dbo runs x86-64 programs only"
                                         : "malformed ELF header";
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)h;
    if (h[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64)
        return "ELF for another architecture; dbo runs x86-64 programs only";
    if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN)
        return "ELF file is not an executable";
    *err = 0;
    return NULL;
}

/* Parses "#!interp [arg]" from the first line. Returns false if none. */
bool parse_shebang(const char *path, char *interp, size_t interp_size, char *arg, size_t arg_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char line[256];
    ssize_t n = read(fd, line, sizeof line - 1);
    close(fd);
    if (n < 2 || line[0] != '#' || line[1] != '!')
        return false;
    line[n] = 0;
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = 0;
    char *p = line + 2;
    while (*p == ' ' || *p == '\t')
        p++;
    char *end = p;
    while (*end && *end != ' ' && *end != '\t')
        end++;
    if (end == p)
        return false;
    snprintf(interp, interp_size, "%.*s", (int)(end - p), p);
    while (*end == ' ' || *end == '\t')
        end++;
    /* The kernel passes the rest of the line as one argument, trailing
     * blanks removed. */
    char *tail = end + strlen(end);
    while (tail > end && (tail[-1] == ' ' || tail[-1] == '\t' || tail[-1] == '\r'))
        *--tail = 0;
    snprintf(arg, arg_size, "%s", end);
    return true;
}
