/* String and memory routines over many sizes and alignments. glibc picks
 * AVX2/EVEX variants of these through ifuncs (based on cpuid), and they use
 * vector loads that may read past the end of a string within a page; the
 * translator must get all of that exactly right. Also explicit rep-prefixed
 * string instructions, forwards and backwards (DF=1). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;
static uint64_t sum;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (failures++ < 10) {                                                                 \
                printf("FAIL line %d: ", __LINE__);                                                \
                printf(__VA_ARGS__);                                                               \
                printf("\n");                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Reference versions through volatile so gcc does not turn them back into
 * library calls. */
static void ref_copy(unsigned char *d, const unsigned char *s, size_t n)
{
    volatile unsigned char *vd = d;
    for (size_t i = 0; i < n; i++)
        vd[i] = s[i];
}

static int ref_eq(const unsigned char *a, const unsigned char *b, size_t n)
{
    const volatile unsigned char *va = a;
    for (size_t i = 0; i < n; i++)
        if (va[i] != b[i])
            return 0;
    return 1;
}

static size_t ref_len(const char *s)
{
    const volatile char *v = s;
    size_t n = 0;
    while (v[n])
        n++;
    return n;
}

static unsigned char *src, *dst, *ref;
#define BUF (3 << 20)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (unsigned char)(seed >> 24) | 1; /* no NULs */
    }
}

static const size_t big_sizes[] = {1000, 2047,      2048,  4095,   4096,    4097,
                                   8191, 32768 + 5, 65536, 100003, 1 << 20, (1 << 21) + 17};

static void test_copy_set(void)
{
    size_t sizes[600];
    size_t ns = 0;
    for (size_t n = 0; n <= 520; n++)
        sizes[ns++] = n;
    for (size_t i = 0; i < sizeof big_sizes / sizeof big_sizes[0]; i++)
        sizes[ns++] = big_sizes[i];

    for (size_t k = 0; k < ns; k++) {
        size_t n = sizes[k];
        int aligns = n > 4096 ? 3 : 8;
        for (int sa = 0; sa < aligns; sa++) {
            for (int da = 0; da < aligns; da++) {
                unsigned char *s = src + sa * 7 % 64, *d = dst + da * 5 % 64;
                memset(dst, 0xAA, n + 128);
                memcpy(d, s, n);
                CHECK(ref_eq(d, s, n), "memcpy n=%zu sa=%d da=%d", n, sa, da);
                CHECK(d[n] == 0xAA, "memcpy overrun n=%zu", n);
                CHECK(memcmp(d, s, n) == 0, "memcmp eq n=%zu", n);
                if (n > 0) {
                    d[n - 1] ^= 0x80;
                    int c = memcmp(d, s, n);
                    CHECK((c > 0) == (d[n - 1] > s[n - 1]) && c != 0, "memcmp last n=%zu", n);
                    d[n - 1] ^= 0x80;
                }
                unsigned char v = (unsigned char)(n + sa);
                memset(d, v, n);
                int ok = 1;
                for (size_t i = 0; i < n && ok; i++)
                    ok = d[i] == v;
                CHECK(ok && d[n] == 0xAA, "memset n=%zu", n);
                sum += n * 3 + (unsigned)sa + (unsigned)da;
            }
        }
        /* overlapping moves both ways */
        for (size_t shift = 1; shift <= 67 && n > 0; shift += 11) {
            ref_copy(ref, src, n + shift);
            memcpy(dst, src, n + shift);
            memmove(dst + shift, dst, n);
            CHECK(ref_eq(dst + shift, ref, n), "memmove fwd n=%zu sh=%zu", n, shift);
            memcpy(dst, src, n + shift);
            memmove(dst, dst + shift, n);
            CHECK(ref_eq(dst, ref + shift, n), "memmove bwd n=%zu sh=%zu", n, shift);
        }
    }
}

static void test_str(void)
{
    char *s = (char *)dst;
    for (size_t n = 0; n <= 700; n++) {
        for (int a = 0; a < 16; a++) {
            char *p = s + a;
            ref_copy((unsigned char *)p, src, n);
            p[n] = 0;
            CHECK(strlen(p) == n, "strlen n=%zu a=%d", n, a);
            CHECK(strnlen(p, n / 2) == n / 2, "strnlen n=%zu", n);
            CHECK(strchr(p, 0) == p + n, "strchr nul n=%zu", n);
            if (n > 0) {
                char c = p[n - 1];
                char *r = strchr(p, c);
                CHECK(r && *r == c && ref_len(r) <= n, "strchr n=%zu", n);
                CHECK(strrchr(p, c) == p + n - 1, "strrchr n=%zu", n);
                CHECK(memchr(p, c, n) == r, "memchr n=%zu", n);
                CHECK(memrchr(p, c, n) == p + n - 1, "memrchr n=%zu", n);
                CHECK(rawmemchr(p, c) == r, "rawmemchr n=%zu", n);
            }
            CHECK(strchr(p, 0x02) == NULL || ref_len(p) == n, "strchr miss");
            char *q = (char *)ref + (a * 3 % 16);
            strcpy(q, p);
            CHECK(strcmp(q, p) == 0 && ref_len(q) == n, "strcpy n=%zu", n);
            char *e = stpcpy(q, p);
            CHECK(e == q + n, "stpcpy n=%zu", n);
            if (n > 0) {
                unsigned char last = (unsigned char)q[n - 1];
                q[n - 1] = (char)(last == 0xff ? 0x01 : last + 1);
                int c = strcmp(q, p);
                CHECK((last == 0xff ? c < 0 : c > 0) && strncmp(q, p, n - 1) == 0, "strcmp n=%zu",
                      n);
                CHECK(strcasecmp(p, p) == 0, "strcasecmp");
            }
            sum += strlen(p) * (unsigned)(a + 1);
        }
    }
    const char *hay = "the quick brown fox jumps over the lazy dog, then the fox naps";
    sum += (size_t)(strstr(hay, "fox naps") - hay) + (size_t)(strstr(hay, "lazy") - hay);
    CHECK(strstr(hay, "cat") == NULL, "strstr miss");
    sum += strspn(hay, "the qu") + strcspn(hay, ",");
}

/* Strings that end exactly at a page boundary, next page inaccessible. */
static void test_page_edge(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char *m =
        mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        printf("mmap failed\n");
        exit(1);
    }
    mprotect(m + pg, pg, PROT_NONE);
    unsigned char *end = m + pg;
    for (size_t n = 1; n <= 300; n++) {
        char *p = (char *)end - n;
        fill((unsigned char *)p, n - 1, (unsigned)n);
        p[n - 1] = 0;
        CHECK(strlen(p) == n - 1, "edge strlen %zu", n);
        CHECK(strchr(p, 2) == NULL, "edge strchr %zu", n); /* fill() makes odd bytes */
        CHECK(memchr(p, 0, n) == p + n - 1, "edge memchr %zu", n);
        CHECK(strcmp(p, p) == 0 && memcmp(p, p, n) == 0, "edge cmp %zu", n);
        CHECK(strnlen(p, 100000) == n - 1, "edge strnlen %zu", n);
        strcpy((char *)dst, p);
        CHECK(ref_eq(dst, (unsigned char *)p, n), "edge strcpy %zu", n);
    }
    munmap(m, 2 * pg);
}

static void rep_movsb(void *d, const void *s, size_t n)
{
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

static void rep_stosb(void *d, int c, size_t n)
{
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
}

static void rep_movsq(void *d, const void *s, size_t n)
{
    __asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

static void rep_stosq(void *d, uint64_t v, size_t n)
{
    __asm__ volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(v) : "memory");
}

/* Backward copy: DF=1, pointers start at the last byte. */
static void rep_movsb_back(void *d, const void *s, size_t n)
{
    unsigned char *de = (unsigned char *)d + n - 1;
    const unsigned char *se = (const unsigned char *)s + n - 1;
    __asm__ volatile("std\n\trep movsb\n\tcld" : "+D"(de), "+S"(se), "+c"(n) : : "memory", "cc");
}

/* repe cmpsb: returns index of first difference, n if equal */
static size_t rep_cmpsb(const void *a, const void *b, size_t n)
{
    size_t left = n;
    if (n == 0)
        return 0;
    __asm__ volatile("repe cmpsb" : "+D"(a), "+S"(b), "+c"(left) : : "memory", "cc");
    /* if all equal, left == 0 and the last byte matched */
    if (left == 0 && ((const unsigned char *)a)[-1] == ((const unsigned char *)b)[-1])
        return n;
    return n - left - 1;
}

/* repne scasb: strlen the old way */
static size_t rep_scasb_len(const char *s)
{
    size_t cnt = (size_t)-1;
    __asm__ volatile("repne scasb" : "+D"(s), "+c"(cnt) : "a"(0) : "memory", "cc");
    return ~cnt - 1;
}

static uint64_t lodsb_sum(const void *s, size_t n)
{
    uint64_t total = 0, tmp;
    __asm__ volatile("1:\n\t"
                     "xorl %%eax, %%eax\n\t"
                     "lodsb\n\t"
                     "addq %%rax, %0\n\t"
                     "loop 1b"
                     : "+r"(total), "+S"(s), "+c"(n), "=&a"(tmp)
                     :
                     : "memory", "cc");
    return total;
}

static void test_rep(void)
{
    static const size_t ns[] = {1,  2,   7,   8,    15,   16,   31,    63,     64,
                                65, 255, 256, 1023, 4096, 4097, 65536, 1 << 20};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        size_t n = ns[k];
        for (int a = 0; a < 4; a++) {
            memset(dst, 0, n + 64);
            rep_movsb(dst + a, src + 3 * a, n);
            CHECK(ref_eq(dst + a, src + 3 * a, n) && dst[a + n] == 0, "rep movsb %zu", n);
            rep_stosb(dst + a, 0x5c, n);
            CHECK(dst[a] == 0x5c && dst[a + n - 1] == 0x5c && dst[a + n] == 0, "rep stosb %zu", n);
            memcpy(dst, src, n + 64);
            rep_movsb_back(dst + 5, dst, n); /* overlapping, so must go backwards */
            CHECK(ref_eq(dst + 5, src, n), "std rep movsb %zu", n);
            CHECK(rep_cmpsb(src, src, n) == n, "cmpsb eq %zu", n);
            memcpy(dst, src, n);
            dst[n / 2] ^= 1;
            CHECK(rep_cmpsb(dst, src, n) == n / 2, "cmpsb diff %zu", n);
            sum += lodsb_sum(src + a, n);
        }
        size_t q = n / 8 + 1;
        rep_movsq(dst, src, q);
        CHECK(ref_eq(dst, src, q * 8), "rep movsq %zu", q);
        rep_stosq(dst, 0x0102030405060708ULL, q);
        CHECK(((uint64_t *)dst)[q - 1] == 0x0102030405060708ULL, "rep stosq %zu", q);
        memcpy(dst, src, n);
        dst[n] = 0;
        CHECK(rep_scasb_len((char *)dst) == n, "scasb %zu", n);
    }
    /* direction flag must be clear again for the library */
    unsigned long fl;
    __asm__ volatile("pushfq\n\tpopq %0" : "=r"(fl));
    CHECK(!(fl & 0x400), "DF left set");
}

int main(void)
{
    src = malloc(BUF);
    dst = malloc(BUF);
    ref = malloc(BUF);
    if (!src || !dst || !ref)
        return 1;
    fill(src, BUF, 42);
    test_copy_set();
    printf("copy/set/move done\n");
    test_str();
    printf("str functions done\n");
    test_page_edge();
    printf("page edge done\n");
    test_rep();
    printf("rep string ops done\n");
    printf("checksum %llu, failures %d\n", (unsigned long long)sum, failures);
    return failures ? 1 : 0;
}
