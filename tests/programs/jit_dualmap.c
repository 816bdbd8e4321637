/* Dual-mapped JIT code, as W^X JITs do it: one memfd mapped twice, an RW
 * view that is written and an RX view at another address that is called.
 * Writes through the RW view never touch the RX view's pages, so a
 * translator cannot learn of them by write-protecting what it executes;
 * it must still never run a stale translation. Rewrites in place, a hot
 * loop rewritten, a fresh RX view after each rewrite, a second thread
 * calling while the first rewrites (ordered by a barrier), and a third
 * view mapped at a fixed offset. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef int (*fn_t)(int);

/* int f(int x) { return x * mul + add; } */
static void emit_affine(unsigned char *p, int32_t mul, int32_t add)
{
    p[0] = 0x89, p[1] = 0xf8; /* mov %edi,%eax */
    p[2] = 0x69, p[3] = 0xc0; /* imul $mul,%eax,%eax */
    memcpy(p + 4, &mul, 4);
    p[8] = 0x05; /* add $add,%eax */
    memcpy(p + 9, &add, 4);
    p[13] = 0xc3; /* ret */
}

/* int f(int n) { int s = 0; do s += k; while (--n); return s; } (n > 0) */
static void emit_loop(unsigned char *p, int8_t k)
{
    static const unsigned char code[] = {
        0x31, 0xc0, 0x83, 0xc0, 0x00, 0xff, 0xcf, 0x75, 0xf9, 0xc3,
    };
    memcpy(p, code, sizeof code);
    p[4] = (unsigned char)k;
}

static int bad_count;
static void check(const char *what, int i, int got, int want)
{
    if (got != want && ++bad_count <= 5)
        printf("  %s, step %d: got %d, expected %d\n", what, i, got, want);
}

static long pg;
static int fd;
static unsigned char *rw, *rx;
static pthread_barrier_t barrier;
static volatile int thread_bad;

static void *caller(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        pthread_barrier_wait(&barrier); /* main has rewritten the function */
        int got = ((fn_t)(void *)(rx + 256))(i);
        thread_bad += got != i * 5 + i;
        pthread_barrier_wait(&barrier); /* done calling */
    }
    return NULL;
}

int main(void)
{
    pg = sysconf(_SC_PAGESIZE);
    fd = memfd_create("dbo-jit", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 4 * pg) != 0) {
        perror("memfd");
        return 1;
    }
    rw = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    rx = mmap(NULL, 4 * pg, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    if (rw == MAP_FAILED || rx == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    int before;

    /* 1: write through RW, call through RX, rewrite in place, call again */
    before = bad_count;
    for (int i = 0; i < 200; i++) {
        emit_affine(rw, 3, i);
        check("in-place rewrite", i, ((fn_t)(void *)rx)(10), 30 + i);
    }
    printf("in-place rewrites through the RW view: %d of 200 calls wrong\n", bad_count - before);

    /* 2: a hot loop, rewritten between calls */
    before = bad_count;
    for (int i = 0; i < 100; i++) {
        emit_loop(rw + 64, (int8_t)(i + 1));
        check("hot loop rewrite", i, ((fn_t)(void *)(rx + 64))(1000), 1000 * (i + 1));
    }
    printf("hot loop rewritten through the RW view: %d of 100 calls wrong\n", bad_count - before);

    /* 3: rewrite only one immediate byte */
    before = bad_count;
    emit_affine(rw + 128, 1, 0);
    for (int i = 0; i < 100; i++) {
        rw[128 + 9] = (unsigned char)i; /* the low byte of add */
        check("one-byte patch", i, ((fn_t)(void *)(rx + 128))(1000), 1000 + i);
    }
    printf("one-byte patches: %d of 100 calls wrong\n", bad_count - before);

    /* 4: a fresh RX view after every rewrite (unmap the old one) */
    before = bad_count;
    for (int i = 0; i < 50; i++) {
        emit_affine(rw + pg, 2, -i);
        unsigned char *view = mmap(NULL, 4 * pg, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
        check("fresh view", i, ((fn_t)(void *)(view + pg))(7), 14 - i);
        munmap(view, 4 * pg);
    }
    printf("fresh RX view per rewrite: %d of 50 calls wrong\n", bad_count - before);

    /* 5: a view of the second page only, at an offset */
    before = bad_count;
    unsigned char *off = mmap(NULL, pg, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 2 * pg);
    for (int i = 0; i < 50; i++) {
        emit_affine(rw + 2 * pg + 32, i, 1);
        check("offset view", i, ((fn_t)(void *)(off + 32))(3), 3 * i + 1);
        check("main view", i, ((fn_t)(void *)(rx + 2 * pg + 32))(4), 4 * i + 1);
    }
    printf("view at an offset and the main view: %d of 100 calls wrong\n", bad_count - before);

    /* 6: another thread calls what this one rewrote */
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, caller, NULL);
    for (int i = 0; i < 100; i++) {
        emit_affine(rw + 256, 5, i);
        pthread_barrier_wait(&barrier);
        pthread_barrier_wait(&barrier);
    }
    pthread_join(t, NULL);
    printf("rewritten by one thread, called by another: %d of 100 calls wrong\n", thread_bad);

    /* 7: W^X by mprotect of the RX view is still allowed to be flipped */
    if (mprotect(rx, pg, PROT_READ) == 0 && mprotect(rx, pg, PROT_READ | PROT_EXEC) == 0) {
        emit_affine(rw, 9, 9);
        printf("after mprotect flips: %d\n", ((fn_t)(void *)rx)(1));
    }
    printf("total wrong: %d\n", bad_count + thread_bad);
    return 0;
}
