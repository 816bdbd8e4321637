/* Bad pointers handed to the calls the runtime emulates (readlink of
 * /proc/self/exe, sigaction, sigprocmask, arch_prctl, execve) get EFAULT,
 * as from the kernel; the runtime must not fault on them itself. */
#include <stdio.h>
#include <unistd.h>
#include <signal.h>
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
int main(void)
{
    long r = syscall(SYS_readlink, "/proc/self/exe", (char *)16, 100);
    printf("readlink bad buf: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    r = syscall(SYS_rt_sigaction, SIGUSR1, (void *)16, NULL, 8);
    printf("sigaction bad act: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    r = syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, (void *)8, 8);
    printf("sigprocmask bad old: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    r = syscall(SYS_arch_prctl, 0x1003, (void *)8);
    printf("arch_prctl bad: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    r = syscall(SYS_execve, (char *)8, NULL, NULL);
    printf("execve bad: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    return 0;
}
