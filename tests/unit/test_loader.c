/* Loader unit tests: PATH search, the checks behind dbo's one-line errors,
 * #! parsing, and brk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader/loader.h"
#include "loader/loader_internal.h"

static char dir[] = "/tmp/dbo-loader-XXXXXX";

static char *write_file(const char *name, const void *data, size_t len, mode_t mode)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fwrite(data, 1, len, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static void test_find_program(void **state)
{
    (void)state;
    setenv("PATH", "/nonexistent:/usr/bin:/bin", 1);
    char *p = loader_find_program("true");
    assert_non_null(p);
    assert_string_equal(p, "/usr/bin/true");
    free(p);
    assert_null(loader_find_program("no-such-program-dbo"));
    assert_int_equal(errno, ENOENT);
    p = loader_find_program("./relative");
    assert_string_equal(p, "./relative"); /* a slash: no search */
    free(p);
}

static void test_check_executable(void **state)
{
    (void)state;
    int err;
    assert_null(loader_check_executable("/bin/true", &err));
    assert_non_null(loader_check_executable("/nonexistent", &err));
    assert_int_equal(err, ENOENT);
    assert_string_equal(loader_check_executable("/tmp", &err), "is a directory");
    char *text = write_file("text", "hello\n", 6, 0755);
    assert_string_equal(loader_check_executable(text, &err), "not an ELF executable");
    assert_int_equal(err, ENOEXEC);
    char *noexec = write_file("noexec", "#!/bin/sh\n", 10, 0644);
    assert_non_null(strstr(loader_check_executable(noexec, &err), "permission denied"));
    assert_int_equal(err, EACCES);

    Elf64_Ehdr eh = {0};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS32;
    char *elf32 = write_file("elf32", &eh, sizeof eh, 0755);
    assert_non_null(strstr(loader_check_executable(elf32, &err), "32-bit"));
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_AARCH64;
    char *arm = write_file("arm", &eh, sizeof eh, 0755);
    assert_non_null(strstr(loader_check_executable(arm, &err), "another architecture"));
    char *script = write_file("script", "#!/bin/sh -e\necho\n", 18, 0755);
    assert_null(loader_check_executable(script, &err));
}

static void test_shebang(void **state)
{
    (void)state;
    char interp[256], arg[256];
    char *p = write_file("s1", "#! /usr/bin/env  python3 -u  \nx\n", 31, 0755);
    assert_true(parse_shebang(p, interp, sizeof interp, arg, sizeof arg));
    assert_string_equal(interp, "/usr/bin/env");
    assert_string_equal(arg, "python3 -u"); /* one argument, as the kernel does */
    p = write_file("s2", "#!/bin/sh\n", 10, 0755);
    assert_true(parse_shebang(p, interp, sizeof interp, arg, sizeof arg));
    assert_string_equal(interp, "/bin/sh");
    assert_string_equal(arg, "");
    p = write_file("s3", "echo hi\n", 8, 0755);
    assert_false(parse_shebang(p, interp, sizeof interp, arg, sizeof arg));
}

static void test_brk(void **state)
{
    (void)state;
    size_t reserve = 64 << 20;
    uint8_t *base =
        mmap(NULL, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    brk_init((uint64_t)base, reserve);
    assert_int_equal(loader_brk(0), (uint64_t)base);
    assert_int_equal(loader_brk((uint64_t)base + 10000), (uint64_t)base + 10000);
    base[9999] = 1; /* now writable */
    /* Beyond the reservation: refused, the break stays. */
    assert_int_equal(loader_brk((uint64_t)base + reserve + 1), (uint64_t)base + 10000);
    /* Shrink and grow again: the memory comes back zeroed. */
    assert_int_equal(loader_brk((uint64_t)base), (uint64_t)base);
    assert_int_equal(loader_brk((uint64_t)base + 10000), (uint64_t)base + 10000);
    assert_int_equal(base[9999], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_program),
        cmocka_unit_test(test_check_executable),
        cmocka_unit_test(test_shebang),
        cmocka_unit_test(test_brk),
    };
    return cmocka_run_group_tests_name("loader", tests, setup, NULL);
}
