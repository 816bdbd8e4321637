/* cflow: control-flow-heavy workload, the worst case for a translator's
 * indirect-branch handling. Usage: cflow N (work scales linearly with N).
 * Mixes, per round: calls through a function table, a large switch compiled
 * to a jump table, deep non-tail recursion (many returns), and
 * virtual-call-like dispatch through per-"class" vtables. Choices come from a
 * PRNG seeded at run time so the compiler cannot devirtualize or fold them.
 * Prints a checksum so the harness can compare output across runners. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NOINL __attribute__((noinline, noipa))

static uint64_t rng = 88172645463325252ull;
static inline uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

/* --- indirect calls through a table ------------------------------------- */
NOINL static uint64_t op0(uint64_t x)
{
    return x + 0x9e37;
}
NOINL static uint64_t op1(uint64_t x)
{
    return x ^ (x >> 7);
}
NOINL static uint64_t op2(uint64_t x)
{
    return x * 3 + 1;
}
NOINL static uint64_t op3(uint64_t x)
{
    return (x << 5) | (x >> 59);
}
NOINL static uint64_t op4(uint64_t x)
{
    return x - (x >> 3);
}
NOINL static uint64_t op5(uint64_t x)
{
    return ~x + 17;
}
NOINL static uint64_t op6(uint64_t x)
{
    return x ^ 0x5bd1e995;
}
NOINL static uint64_t op7(uint64_t x)
{
    return x + (x << 2);
}
static uint64_t (*const ops[8])(uint64_t) = {op0, op1, op2, op3, op4, op5, op6, op7};

/* --- big switch (jump table) -------------------------------------------- */
NOINL static uint64_t sw(uint32_t k, uint64_t x)
{
    switch (k & 63) {
#define C(n)                                                                                       \
    case n: return x * (2 * n + 1) + n;
        C(0) C(1) C(2) C(3) C(4) C(5) C(6) C(7) C(8) C(9) C(10) C(11) C(12) C(13) C(14) C(15) C(16)
                C(17) C(18) C(19) C(20) C(21) C(22) C(23) C(24) C(25) C(26) C(27) C(28) C(29) C(30)
                    C(31) C(32) C(33) C(34) C(35) C(36) C(37) C(38) C(39) C(40) C(41) C(42) C(43)
                        C(44) C(45) C(46) C(47) C(48) C(49) C(50) C(51) C(52) C(53) C(54) C(55)
                            C(56) C(57) C(58) C(59) C(60) C(61) C(62)
#undef C
                                default : return x ^
                                          0xabcdef;
    }
}

/* --- deep recursion ------------------------------------------------------ */
static volatile uint64_t sink;
NOINL static uint64_t deep(unsigned d, uint64_t x)
{
    if (d == 0)
        return x;
    uint64_t r = deep(d - 1, x + d);
    sink = r; /* work after the call: no tail-call or accumulator rewrite */
    return r ^ (r >> 11) ^ d;
}

NOINL static uint64_t fib(unsigned n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

/* --- virtual-call-like dispatch ----------------------------------------- */
struct shape;
struct vtable {
    uint64_t (*area)(const struct shape *);
    uint64_t (*scale)(struct shape *, uint32_t);
};
struct shape {
    const struct vtable *vt;
    uint64_t a, b;
};

NOINL static uint64_t sq_area(const struct shape *s)
{
    return s->a * s->a;
}
NOINL static uint64_t sq_scale(struct shape *s, uint32_t k)
{
    s->a = (s->a + k) & 0xffff;
    return s->a;
}
NOINL static uint64_t re_area(const struct shape *s)
{
    return s->a * s->b;
}
NOINL static uint64_t re_scale(struct shape *s, uint32_t k)
{
    s->b = (s->b ^ k) & 0xffff;
    return s->b;
}
NOINL static uint64_t tr_area(const struct shape *s)
{
    return s->a * s->b / 2;
}
NOINL static uint64_t tr_scale(struct shape *s, uint32_t k)
{
    s->a = (s->a * 3 + k) & 0xffff;
    return s->a + s->b;
}
NOINL static uint64_t ci_area(const struct shape *s)
{
    return s->a * s->a * 355 / 113;
}
NOINL static uint64_t ci_scale(struct shape *s, uint32_t k)
{
    s->a = (s->a + (k & 7)) & 0xffff;
    return s->a;
}
static const struct vtable vts[4] = {
    {sq_area, sq_scale}, {re_area, re_scale}, {tr_area, tr_scale}, {ci_area, ci_scale}};

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100;
    rng ^= (uint64_t)n; /* run-time seed: nothing is known at compile time */
    struct shape shapes[64];
    for (int i = 0; i < 64; i++) {
        shapes[i].vt = &vts[next() & 3];
        shapes[i].a = next() & 0xffff;
        shapes[i].b = next() & 0xffff;
    }
    uint64_t h = 0;
    for (long round = 0; round < n; round++) {
        for (int i = 0; i < 2000; i++)
            h = ops[next() & 7](h);
        for (int i = 0; i < 2000; i++)
            h = sw(next(), h);
        h += deep(500 + (next() & 511), h);
        h += fib(12 + (next() & 3));
        for (int i = 0; i < 2000; i++) {
            struct shape *s = &shapes[next() & 63];
            h += s->vt->area(s);
            h ^= s->vt->scale(s, (uint32_t)h);
        }
    }
    printf("cflow %ld %016llx\n", n, (unsigned long long)h);
    return 0;
}
