/* Loader: finds and maps the guest program (ELF or #! script) and its
 * interpreter, builds the initial stack and auxv, and emulates brk. */
#ifndef DBO_LOADER_H
#define DBO_LOADER_H

#include <stdbool.h>
#include <stdint.h>

struct guest_start {
    uint64_t entry; /* first guest instruction (interpreter's if any) */
    uint64_t stack; /* initial %rsp, pointing at argc */
    char *exe_path; /* absolute path of the main ELF: /proc/self/exe */
    uint64_t arg_start, arg_end, env_start, env_end; /* strings on the guest stack */
};

/* Resolves `name` as a shell would (PATH search when it has no '/').
 * Returns a malloc'd path, or NULL with errno set. */
char *loader_find_program(const char *name);

/* Why a file cannot be run: NULL if it can, else a static message. */
const char *loader_check_executable(const char *path, int *err);

/* Loads `path` (ELF or #! script) with guest argv/envp, maps everything,
 * builds the stack. Exits with a one-line error on bad input. */
void loader_load(const char *path, char **argv, char **envp, struct guest_start *start);

/* Emulated brk for the guest. */
uint64_t loader_brk(uint64_t requested);

#endif
