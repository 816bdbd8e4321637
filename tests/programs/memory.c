/* Memory management system calls and the allocator on top of them: brk and
 * sbrk, malloc of many sizes (big ones come from mmap), realloc across the
 * mmap threshold, mmap/mprotect/munmap/mremap, shared file mappings seen
 * through two addresses, and MADV_DONTNEED. A translator that manages the
 * guest address space itself must keep all of this consistent. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;
#define CHECK(c, what)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            failures++;                                                                            \
            printf("FAIL: %s (line %d)\n", what, __LINE__);                                        \
        }                                                                                          \
    } while (0)

static unsigned char pattern(size_t i, unsigned seed)
{
    return (unsigned char)((i * 2654435761u) >> 13 ^ seed);
}

static void test_brk(void)
{
    char *start = sbrk(0);
    CHECK(start != (void *)-1, "sbrk(0)");
    char *p = sbrk(1 << 20);
    CHECK(p == start, "sbrk returns old break");
    CHECK(sbrk(0) == start + (1 << 20), "break moved by 1 MiB");
    memset(p, 0x5a, 1 << 20); /* new memory must be usable */
    CHECK(p[0] == 0x5a && p[(1 << 20) - 1] == 0x5a, "brk memory usable");
    CHECK(brk(start + 4096) == 0, "brk shrink");
    CHECK(sbrk(0) == start + 4096, "break after shrink");
    CHECK(brk(start) == 0, "brk back");
    printf("brk/sbrk ok\n");
}

static void test_malloc(void)
{
    enum { N = 400 };
    static unsigned char *ptrs[N];
    static size_t sizes[N];
    uint64_t sum = 0;
    unsigned s = 1;
    for (int i = 0; i < N; i++) {
        s = s * 1103515245u + 12345u;
        /* sizes from 0 bytes up to 32 MiB, most small */
        size_t sz = i % 40 == 39 ? ((size_t)1 << (16 + i / 40)) + s % 4096
                                 : (s >> 16) % (1u << (i % 14 + 1));
        sizes[i] = sz;
        ptrs[i] = malloc(sz);
        CHECK(ptrs[i] != NULL || sz == 0, "malloc");
        CHECK(((uintptr_t)ptrs[i] & 15) == 0, "malloc alignment");
        for (size_t j = 0; j < sz; j += (sz > 65536 ? 4093 : 1))
            ptrs[i][j] = pattern(j, (unsigned)i);
        if (i % 3 == 2) { /* free some as we go, to reuse */
            free(ptrs[i - 1]);
            ptrs[i - 1] = NULL;
        }
    }
    for (int i = 0; i < N; i++) {
        if (!ptrs[i])
            continue;
        for (size_t j = 0; j < sizes[i]; j += (sizes[i] > 65536 ? 4093 : 1)) {
            if (ptrs[i][j] != pattern(j, (unsigned)i)) {
                CHECK(0, "malloc contents");
                break;
            }
            sum += ptrs[i][j];
        }
        free(ptrs[i]);
    }
    printf("malloc of %d blocks ok, checksum %llu\n", N, (unsigned long long)sum);

    /* realloc growing from 1 byte to 16 MiB and back, contents preserved */
    unsigned char *r = malloc(1);
    r[0] = 0xab;
    size_t sz = 1;
    while (sz < (16u << 20)) {
        size_t nsz = sz * 3 + 7;
        r = realloc(r, nsz);
        CHECK(r && r[0] == 0xab && r[sz - 1] == (sz == 1 ? 0xab : pattern(sz - 1, 9)),
              "realloc grow");
        for (size_t j = sz; j < nsz; j++)
            r[j] = pattern(j, 9);
        sz = nsz;
        r[0] = 0xab;
        r[sz - 1] = pattern(sz - 1, 9);
    }
    r = realloc(r, 100);
    CHECK(r && r[0] == 0xab && r[99] == pattern(99, 9), "realloc shrink");
    free(r);

    /* calloc must return zeroed memory, small and huge */
    for (size_t n = 1; n <= (8u << 20); n *= 7) {
        unsigned char *c = calloc(n, 1);
        size_t nz = 0;
        for (size_t j = 0; j < n; j += 1 + j / 64)
            nz += c[j] != 0;
        CHECK(nz == 0, "calloc zero");
        memset(c, 0xff, n);
        free(c);
    }
    void *al = NULL;
    CHECK(posix_memalign(&al, 1 << 16, 12345) == 0 && ((uintptr_t)al & 0xffff) == 0,
          "posix_memalign");
    free(al);
    printf("realloc/calloc/memalign ok\n");
}

static sigjmp_buf jb;
static void on_segv(int sig)
{
    siglongjmp(jb, sig);
}

static void test_mmap(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    printf("page size %ld\n", pg);
    size_t len = 64 * (size_t)pg;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap anon");
    CHECK(m[0] == 0 && m[len - 1] == 0, "anon zero");
    for (size_t i = 0; i < len; i++)
        m[i] = pattern(i, 3);

    /* read-only page: writes fault, reads still work */
    signal(SIGSEGV, on_segv);
    CHECK(mprotect(m + pg, (size_t)pg, PROT_READ) == 0, "mprotect");
    volatile int faulted = 0;
    if (sigsetjmp(jb, 1) == 0)
        ((volatile unsigned char *)m)[pg + 5] = 1;
    else
        faulted = 1;
    CHECK(faulted && m[pg + 5] == pattern(pg + 5, 3), "write to PROT_READ faults");
    CHECK(mprotect(m + pg, (size_t)pg, PROT_NONE) == 0, "mprotect none");
    faulted = 0;
    if (sigsetjmp(jb, 1) == 0)
        (void)((volatile unsigned char *)m)[pg + 7];
    else
        faulted = 1;
    CHECK(faulted, "read of PROT_NONE faults");
    mprotect(m + pg, (size_t)pg, PROT_READ | PROT_WRITE);
    CHECK(m[pg + 7] == pattern(pg + 7, 3), "contents kept across mprotect");

    /* mremap: grow with move, contents preserved */
    unsigned char *g = mremap(m, len, 4 * len, MREMAP_MAYMOVE);
    CHECK(g != MAP_FAILED, "mremap");
    int ok = 1;
    for (size_t i = 0; i < len; i++)
        ok &= g[i] == pattern(i, 3);
    CHECK(ok && g[4 * len - 1] == 0, "mremap contents");

    /* punch a hole with munmap: touching it faults */
    CHECK(munmap(g + 8 * pg, (size_t)pg) == 0, "munmap hole");
    faulted = 0;
    if (sigsetjmp(jb, 1) == 0)
        (void)((volatile unsigned char *)g)[8 * pg];
    else
        faulted = 1;
    CHECK(faulted, "unmapped page faults");
    /* MAP_FIXED into the hole */
    unsigned char *f = mmap(g + 8 * pg, (size_t)pg, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    CHECK(f == g + 8 * pg && f[0] == 0, "MAP_FIXED");
    CHECK(madvise(g, (size_t)pg, MADV_DONTNEED) == 0 && g[1] == 0, "MADV_DONTNEED zeroes");
    munmap(g, 4 * len);
    signal(SIGSEGV, SIG_DFL);

    /* shared file mapping seen at two addresses */
    int fd = memfd_create("dbo-test", 0);
    CHECK(fd >= 0 && ftruncate(fd, 4 * pg) == 0, "memfd");
    unsigned char *a = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unsigned char *b = mmap(NULL, 4 * pg, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(a != MAP_FAILED && b != MAP_FAILED && a != b, "two shared maps");
    strcpy((char *)a + pg, "written through a");
    CHECK(strcmp((char *)b + pg, "written through a") == 0, "shared visible");
    CHECK(pwrite(fd, "via pwrite", 11, 2 * pg) == 11, "pwrite");
    CHECK(strcmp((char *)a + 2 * pg, "via pwrite") == 0, "pwrite visible in map");
    munmap(a, 4 * pg);
    munmap(b, 4 * pg);
    close(fd);

    /* a bad munmap/mprotect reports EINVAL */
    errno = 0;
    CHECK(munmap((void *)((uintptr_t)m | 1), (size_t)pg) == -1 && errno == EINVAL,
          "munmap misaligned");
    printf("mmap/mprotect/mremap/munmap ok\n");
}

int main(void)
{
    test_brk();
    test_malloc();
    test_mmap();
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
