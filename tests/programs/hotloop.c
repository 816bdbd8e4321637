/* Hot loops with millions of iterations, each result computed two
 * different ways and compared, so wrong traces or a wrongly optimised
 * loop body show up as a failed self-check (exit status 1) rather than
 * just different output. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(const char *what, unsigned long long a, unsigned long long b)
{
    printf("%-22s %llu %s\n", what, a, a == b ? "ok" : "MISMATCH");
    if (a != b)
        failures++;
}

/* Sieve of Eratosthenes vs. trial division on a subrange. */
static unsigned sieve_count(unsigned n, unsigned char *comp)
{
    memset(comp, 0, n + 1);
    unsigned count = 0;
    for (unsigned i = 2; i <= n; i++) {
        if (comp[i])
            continue;
        count++;
        for (unsigned long j = (unsigned long)i * i; j <= n; j += i)
            comp[j] = 1;
    }
    return count;
}

static int is_prime(unsigned n)
{
    if (n < 2)
        return 0;
    for (unsigned d = 2; d * d <= n; d++)
        if (n % d == 0)
            return 0;
    return 1;
}

/* CRC-32: table-driven vs. bit-at-a-time */
static uint32_t crc_table[256];
static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}
static uint32_t crc_fast(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    while (n--)
        c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}
static uint32_t crc_slow(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

/* Collatz: longest chain below n, with and without a memo table. */
static unsigned collatz_len(uint64_t x)
{
    unsigned steps = 0;
    while (x != 1) {
        x = x & 1 ? 3 * x + 1 : x / 2;
        steps++;
    }
    return steps;
}

int main(void)
{
    enum { N = 2000000 };
    unsigned char *comp = malloc(N + 1);
    if (!comp)
        return 1;
    unsigned primes = sieve_count(N, comp);
    check("primes below 2e6", primes, 148933);
    unsigned by_trial = 0, by_sieve = 0;
    for (unsigned i = 1900000; i <= N; i++) {
        by_trial += is_prime(i);
        by_sieve += !comp[i];
    }
    check("primes in range", by_trial, by_sieve);

    crc_init();
    unsigned char *buf = malloc(1 << 20);
    uint32_t s = 1;
    for (int i = 0; i < 1 << 20; i++) {
        s = s * 1103515245u + 12345u;
        buf[i] = (unsigned char)(s >> 16);
    }
    check("crc32 1MiB", crc_fast(buf, 1 << 20), crc_slow(buf, 1 << 20));
    check("crc32 check value", crc_fast((const unsigned char *)"123456789", 9), 0xcbf43926u);

    enum { M = 300000 };
    unsigned short *memo = calloc(M, sizeof *memo);
    unsigned best = 0, best_at = 0, best2 = 0;
    for (unsigned i = 1; i < M; i++) {
        uint64_t x = i;
        unsigned steps = 0;
        while (x != 1 && (x >= i || x >= M)) {
            x = x & 1 ? 3 * x + 1 : x / 2;
            steps++;
        }
        memo[i] = (unsigned short)(steps + (x == 1 ? 0 : memo[x]));
        if (memo[i] > best) {
            best = memo[i];
            best_at = i;
        }
    }
    best2 = collatz_len(best_at);
    printf("collatz longest below %d starts at %u\n", M, best_at);
    check("collatz steps", best, best2);

    /* integer matrix multiply, ijk vs. ikj order */
    enum { D = 120 };
    static int32_t A[D][D], B[D][D], C1[D][D], C2[D][D];
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            A[i][j] = (i * 7 + j * 3) % 19 - 9;
            B[i][j] = (i * 5 + j * 11) % 23 - 11;
        }
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            int32_t t = 0;
            for (int k = 0; k < D; k++)
                t += A[i][k] * B[k][j];
            C1[i][j] = t;
        }
    for (int i = 0; i < D; i++)
        for (int k = 0; k < D; k++)
            for (int j = 0; j < D; j++)
                C2[i][j] += A[i][k] * B[k][j];
    uint64_t h1 = 0, h2 = 0;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            h1 = h1 * 1000003 + (uint32_t)C1[i][j];
            h2 = h2 * 1000003 + (uint32_t)C2[i][j];
        }
    check("matmul hash", h1, h2);

    /* 10 million LCG steps vs. the closed-form jump-ahead */
    uint64_t x = 12345;
    const uint64_t a = 6364136223846793005ULL, c = 1442695040888963407ULL;
    for (long i = 0; i < 10000000; i++)
        x = x * a + c;
    uint64_t ja = 1, jc = 0, ma = a, mc = c; /* compose (a,c)^n by squaring */
    for (unsigned long n = 10000000; n; n >>= 1) {
        if (n & 1) {
            ja = ja * ma;
            jc = jc * ma + mc;
        }
        mc = mc * ma + mc;
        ma = ma * ma;
    }
    check("lcg 1e7 steps", x, 12345 * ja + jc);

    free(comp);
    free(buf);
    free(memo);
    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
