/* Thread-local storage in a single thread: __thread variables with every
 * TLS access model, the %fs-based thread pointer as glibc sees it,
 * arch_prctl and (if the kernel enables them) the FSGSBASE instructions,
 * and a guest that points %gs at its own data. A translator that itself
 * uses %fs or %gs must virtualise all of this. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

__thread int counter = 42;
__thread char tbuf[100] = "initial tls string";
__thread long zeroed[64];
static __thread struct {
    int a;
    double b;
} st = {7, 2.5};
__thread int gd __attribute__((tls_model("global-dynamic"))) = 1;
static __thread int ld __attribute__((tls_model("local-dynamic"))) = 2;
__thread int ie __attribute__((tls_model("initial-exec"))) = 3;
static __thread int le __attribute__((tls_model("local-exec"))) = 4;

static int __attribute__((noinline)) * counter_addr(void)
{
    return &counter;
}

static int arch_prctl(int code, unsigned long addr)
{
    return (int)syscall(SYS_arch_prctl, code, addr);
}

static volatile int handler_saw;
static void on_usr1(int sig)
{
    (void)sig;
    handler_saw = counter; /* TLS access from a signal handler */
    counter++;
}

int main(void)
{
    for (int i = 0; i < 1000000; i++) {
        counter += i & 1;
        zeroed[i & 63] += i;
        gd += ld;
        ie ^= le << (i & 7);
    }
    long zs = 0;
    for (int i = 0; i < 64; i++)
        zs += zeroed[i];
    printf("counter %d, tbuf \"%s\", zeroed sum %ld, st {%d, %g}\n", counter, tbuf, zs, st.a, st.b);
    printf("models: gd %d ld %d ie %d le %d\n", gd, ld, ie, le);
    strcpy(tbuf, "changed");
    printf("tbuf now \"%s\"; &counter stable: %d\n", tbuf, counter_addr() == &counter);

    uintptr_t fs0;
    __asm__("movq %%fs:0, %0" : "=r"(fs0));
    printf("%%fs:0 == pthread_self(): %d\n", fs0 == (uintptr_t)pthread_self());
    unsigned long fsbase = 0;
    arch_prctl(ARCH_GET_FS, (unsigned long)&fsbase);
    printf("ARCH_GET_FS == %%fs:0: %d\n", fsbase == fs0);
    printf("&counter inside TLS block below fs: %d\n",
           (uintptr_t)&counter < fsbase && fsbase - (uintptr_t)&counter < 65536);

    errno = 0;
    close(-1);
    printf("errno (TLS) after close(-1): %s\n", errno == EBADF ? "EBADF" : "other");

    signal(SIGUSR1, on_usr1);
    int before = counter;
    raise(SIGUSR1);
    printf("signal handler saw TLS: %d, updated it: %d\n", handler_saw == before,
           counter == before + 1);

    /* the guest uses %gs for its own purposes */
    static uint64_t gsdata[4] = {0x1111, 0x2222, 0x3333, 0x4444};
    int rc = arch_prctl(ARCH_SET_GS, (unsigned long)gsdata);
    uint64_t v;
    __asm__ volatile("movq %%gs:8, %0" : "=r"(v));
    unsigned long gsbase = 0;
    arch_prctl(ARCH_GET_GS, (unsigned long)&gsbase);
    printf("ARCH_SET_GS rc %d, %%gs:8 = %#llx, ARCH_GET_GS matches: %d\n", rc,
           (unsigned long long)v, gsbase == (unsigned long)gsdata);

    if (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) {
        uint64_t rfs, rgs, w;
        __asm__ volatile("rdfsbase %0" : "=r"(rfs));
        __asm__ volatile("rdgsbase %0" : "=r"(rgs));
        static uint64_t other[2] = {0xabcdef, 0x123456};
        __asm__ volatile("wrgsbase %0" : : "r"(other) : "memory");
        __asm__ volatile("movq %%gs:0, %0" : "=r"(w));
        arch_prctl(ARCH_GET_GS, (unsigned long)&gsbase);
        printf("fsgsbase: rdfsbase ok %d, rdgsbase ok %d, wrgsbase+%%gs:0 = %#llx, "
               "ARCH_GET_GS sees it %d\n",
               rfs == fsbase, rgs == (uint64_t)gsdata, (unsigned long long)w,
               gsbase == (unsigned long)other);
        /* TLS must still work after the guest changed %gs */
        counter++;
        printf("counter after wrgsbase: %d\n", counter);
    } else {
        printf("fsgsbase: not enabled\n");
    }
    arch_prctl(ARCH_SET_GS, 0);
    return 0;
}
