/* Syscall layer unit tests: the guest memory map, protections, the raw
 * syscall path and the name table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "translator/translator.h"

static void test_record_and_split(void **state)
{
    (void)state;
    guest_vm_record(0x10000000, 0x10000, PROT_READ | PROT_EXEC);
    assert_true(guest_vm_executable(0x10000000));
    assert_true(guest_vm_executable(0x1000ffff));
    assert_false(guest_vm_executable(0x10010000));
    /* A hole in the middle splits the region in two. */
    guest_vm_record(0x10004000, 0x1000, PROT_READ);
    assert_true(guest_vm_executable(0x10003fff));
    assert_false(guest_vm_executable(0x10004000));
    assert_true(guest_vm_executable(0x10005000));
    assert_int_equal(guest_vm_exec_extent(0x10003ff0), 16);
    assert_int_equal(guest_vm_exec_extent(0x10003ff8), 8);
    guest_vm_forget(0x10000000, 0x10000);
    assert_false(guest_vm_executable(0x10005000));
    assert_int_equal(guest_vm_exec_extent(0x10005000), 0);
}

static void test_extent_spans_adjacent_regions(void **state)
{
    (void)state;
    guest_vm_record(0x20000000, 0x1000, PROT_READ | PROT_EXEC);
    guest_vm_record(0x20001000, 0x1000, PROT_READ | PROT_WRITE | PROT_EXEC);
    /* An instruction may straddle two executable regions. */
    assert_true(guest_vm_exec_extent(0x20000ffa) >= 15);
    guest_vm_forget(0x20000000, 0x2000);
}

static void test_host_prot(void **state)
{
    (void)state;
    assert_int_equal(guest_vm_host_prot(PROT_READ | PROT_EXEC), PROT_READ);
    assert_int_equal(guest_vm_host_prot(PROT_EXEC), PROT_READ);
    assert_int_equal(guest_vm_host_prot(PROT_READ | PROT_WRITE | PROT_EXEC),
                     PROT_READ | PROT_WRITE);
    assert_int_equal(guest_vm_host_prot(PROT_NONE), PROT_NONE);
}

static void test_raw_and_names(void **state)
{
    (void)state;
    assert_int_equal(syscall_raw(SYS_getpid, 0, 0, 0, 0, 0, 0), getpid());
    assert_int_equal(syscall_raw(SYS_close, -1, 0, 0, 0, 0, 0), -9 /* EBADF */);
    assert_string_equal(syscall_name(0), "read");
    assert_string_equal(syscall_name(231), "exit_group");
    assert_string_equal(syscall_name(99999), "syscall_99999");
}

/* The fast path takes only what the gate would pass on unchanged. */
static void test_fast_allowed(void **state)
{
    (void)state;
    static const long emulated[] = {
        SYS_brk,        SYS_mmap,           SYS_munmap,         SYS_mprotect,     SYS_mremap,
        SYS_madvise,    SYS_arch_prctl,     SYS_rseq,           SYS_openat,       SYS_readlinkat,
        SYS_statx,      SYS_rt_sigaction,   SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_sigaltstack,
        SYS_clone,      SYS_clone3,         SYS_vfork,          SYS_execve,       SYS_exit,
        SYS_exit_group, SYS_set_tid_address};
    for (size_t i = 0; i < sizeof emulated / sizeof *emulated; i++)
        assert_false(syscall_fast_allowed(emulated[i]));
    assert_true(syscall_fast_allowed(SYS_getppid));
    assert_true(syscall_fast_allowed(SYS_read));
    assert_true(syscall_fast_allowed(SYS_futex));
    assert_false(syscall_fast_allowed(-1));
    assert_false(syscall_fast_allowed(512));
    /* calls on a path: fast unless the path may be one of /proc's links */
    assert_int_equal(syscall_fast_path_arg(SYS_stat), 1);
    assert_int_equal(syscall_fast_path_arg(SYS_readlink), 1);
    assert_int_equal(syscall_fast_path_arg(SYS_statx), 2);
    assert_int_equal(syscall_fast_path_arg(SYS_openat), 2);
    assert_int_equal(syscall_fast_path_arg(SYS_read), 0);
    assert_int_equal(syscall_fast_path_arg(SYS_execve), 0);
    dbo_opts.verbose = true; /* it logs every call */
    assert_false(syscall_fast_allowed(SYS_getppid));
    assert_int_equal(syscall_fast_path_arg(SYS_stat), 0);
    dbo_opts.verbose = false;
}

/* The gate reads the number as the kernel does, from eax: junk in the
 * upper half changes nothing, and x32 numbers are refused. */
static void test_gate_number(void **state)
{
    (void)state;
    struct guest_context *ctx = context_create(true);
    translator_lock();
    ctx->gpr[GPR_RAX] = (1ull << 32) | SYS_getppid;
    syscall_gate(ctx);
    assert_int_equal(ctx->gpr[GPR_RAX], getppid());
    /* rseq is answered by the gate (ENOSYS), not the kernel (EINVAL here) */
    ctx->gpr[GPR_RAX] = (1ull << 32) | SYS_rseq;
    ctx->gpr[GPR_RDI] = ctx->gpr[GPR_RSI] = ctx->gpr[GPR_RDX] = ctx->gpr[GPR_R10] = 0;
    syscall_gate(ctx);
    assert_int_equal((long)ctx->gpr[GPR_RAX], -ENOSYS);
    ctx->gpr[GPR_RAX] = 0x40000000 | SYS_getppid;
    syscall_gate(ctx);
    assert_int_equal((long)ctx->gpr[GPR_RAX], -ENOSYS);
    translator_unlock();
    context_release(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_and_split),
        cmocka_unit_test(test_extent_spans_adjacent_regions),
        cmocka_unit_test(test_host_prot),
        cmocka_unit_test(test_raw_and_names),
        cmocka_unit_test(test_fast_allowed),
        cmocka_unit_test(test_gate_number),
    };
    return cmocka_run_group_tests_name("syscall", tests, NULL, NULL);
}
