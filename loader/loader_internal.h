/* Shared between the files of loader/ only. */
#ifndef DBO_LOADER_INTERNAL_H
#define DBO_LOADER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct elf_image {
    uint64_t bias; /* load address minus link-time address */
    uint64_t entry;
    uint64_t phdr; /* address of the program headers in memory */
    uint64_t phnum;
    uint64_t end;      /* one past the highest mapped byte */
    bool exec_stack;   /* PT_GNU_STACK absent or PF_X */
    char interp[4096]; /* PT_INTERP, empty if none */
};

bool parse_shebang(const char *path, char *interp, size_t interp_size, char *arg, size_t arg_size);
const char *elf_machine_name(int machine);

/* Maps an ELF file; `reserve_after` extra bytes are reserved right after
 * the image (for brk). Exits with a one-line error on failure. */
void map_elf(const char *path, struct elf_image *img, uint64_t reserve_after);

void brk_init(uint64_t start, uint64_t reserved);

struct guest_start;
uint64_t build_initial_stack(char **argv, char **envp, const char *execfn,
                             const struct elf_image *exe, const struct elf_image *interp,
                             struct guest_start *start);

#endif
