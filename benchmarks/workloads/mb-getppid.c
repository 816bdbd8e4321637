/* mb-getppid: syscall round trip. Usage: mb-getppid N (N getppid calls).
 * Raw syscall() so glibc cannot cache or vDSO it; under a translator every
 * call goes through its syscall gate. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    long ppid = syscall(SYS_getppid), bad = 0;
    for (long i = 0; i < n; i++)
        bad += syscall(SYS_getppid) != ppid;
    printf("getppid %ld calls, %ld mismatches\n", n, bad);
    return 0;
}
