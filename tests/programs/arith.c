/* Integer arithmetic and condition flags: the things a translator that
 * computes flags lazily (or not at all) gets wrong. Exercises adc/sbb chains
 * (128-bit math and overflow builtins), setcc and cmov for every condition,
 * and reads EFLAGS directly with pushfq after each ALU op, masking the bits
 * the ISA leaves undefined for that op. */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <x86intrin.h>

#define CF 0x001
#define PF 0x004
#define AF 0x010
#define ZF 0x040
#define SF 0x080
#define OF 0x800
#define ALL (CF | PF | AF | ZF | SF | OF)

static uint64_t hash = 1469598103934665603ULL;

static void mix(uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        hash ^= (v >> (i * 8)) & 0xff;
        hash *= 1099511628211ULL;
    }
}

/* Inputs come through volatile so the compiler cannot fold the tests away. */
static volatile uint64_t vals[] = {
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fffffff,
    0x80000000,
    0xffffffff,
    0x100000000ULL,
    0x7fffffffffffffffULL,
    0x8000000000000000ULL,
    0xffffffffffffffffULL,
    0xfffffffffffffffeULL,
    0x123456789abcdef0ULL,
    0xdeadbeefcafebabeULL,
};
#define NVALS (sizeof(vals) / sizeof(vals[0]))

/* pushfq writes below %rsp, which may be the red zone of a leaf function:
 * step over it with lea (lea does not touch the flags). */
#define FLAGS_PRE "lea -128(%%rsp), %%rsp\n\t"
#define FLAGS_POST "\n\tpushfq\n\tpopq %1\n\tlea 128(%%rsp), %%rsp"

#define BINOP_Q(name, pre, insn)                                                                   \
    static uint64_t name(uint64_t a, uint64_t b, uint64_t *fl)                                     \
    {                                                                                              \
        uint64_t f;                                                                                \
        __asm__(FLAGS_PRE pre "\n\t" insn " %2, %0" FLAGS_POST                                     \
                : "+r"(a), "=&r"(f)                                                                \
                : "r"(b)                                                                           \
                : "cc");                                                                           \
        *fl = f;                                                                                   \
        return a;                                                                                  \
    }
#define BINOP_L(name, pre, insn)                                                                   \
    static uint64_t name(uint64_t a, uint64_t b, uint64_t *fl)                                     \
    {                                                                                              \
        uint32_t x = (uint32_t)a;                                                                  \
        uint64_t f;                                                                                \
        __asm__(FLAGS_PRE pre "\n\t" insn " %k2, %k0" FLAGS_POST                                   \
                : "+r"(x), "=&r"(f)                                                                \
                : "r"(b)                                                                           \
                : "cc");                                                                           \
        *fl = f;                                                                                   \
        return x;                                                                                  \
    }
#define BINOP_B(name, pre, insn)                                                                   \
    static uint64_t name(uint64_t a, uint64_t b, uint64_t *fl)                                     \
    {                                                                                              \
        uint64_t x = a, f;                                                                         \
        __asm__(FLAGS_PRE pre "\n\t" insn " %b2, %b0" FLAGS_POST                                   \
                : "+q"(x), "=&r"(f)                                                                \
                : "q"(b)                                                                           \
                : "cc");                                                                           \
        *fl = f;                                                                                   \
        return x;                                                                                  \
    }
#define SHIFT_Q(name, insn)                                                                        \
    static uint64_t name(uint64_t a, uint64_t b, uint64_t *fl)                                     \
    {                                                                                              \
        uint64_t f;                                                                                \
        __asm__(FLAGS_PRE "clc\n\t" insn " %%cl, %0" FLAGS_POST                                    \
                : "+r"(a), "=&r"(f)                                                                \
                : "c"(b)                                                                           \
                : "cc");                                                                           \
        *fl = f;                                                                                   \
        return a;                                                                                  \
    }
#define UNOP_Q(name, pre, insn)                                                                    \
    static uint64_t name(uint64_t a, uint64_t b, uint64_t *fl)                                     \
    {                                                                                              \
        uint64_t f;                                                                                \
        (void)b;                                                                                   \
        __asm__(FLAGS_PRE pre "\n\t" insn " %0" FLAGS_POST : "+r"(a), "=&r"(f) : : "cc");          \
        *fl = f;                                                                                   \
        return a;                                                                                  \
    }

BINOP_Q(addq, "", "addq")
BINOP_Q(adcq0, "clc", "adcq")
BINOP_Q(adcq1, "stc", "adcq")
BINOP_Q(subq, "", "subq")
BINOP_Q(sbbq0, "clc", "sbbq")
BINOP_Q(sbbq1, "stc", "sbbq")
BINOP_Q(andq, "", "andq")
BINOP_Q(orq, "", "orq")
BINOP_Q(xorq, "", "xorq")
BINOP_Q(cmpq, "", "cmpq")
BINOP_Q(testq, "", "testq")
BINOP_Q(imulq, "", "imulq")
BINOP_Q(btq, "", "btq")
BINOP_L(addl, "", "addl")
BINOP_L(adcl1, "stc", "adcl")
BINOP_L(subl, "", "subl")
BINOP_L(sbbl1, "stc", "sbbl")
BINOP_L(xorl, "", "xorl")
BINOP_B(addb, "", "addb")
BINOP_B(subb, "", "subb")
BINOP_B(adcb1, "stc", "adcb")
SHIFT_Q(shlq, "shlq")
SHIFT_Q(shrq, "shrq")
SHIFT_Q(sarq, "sarq")
SHIFT_Q(rolq, "rolq")
SHIFT_Q(rorq, "rorq")
UNOP_Q(negq, "", "negq")
UNOP_Q(notq, "stc", "notq")
UNOP_Q(incq_c0, "clc", "incq")
UNOP_Q(incq_c1, "stc", "incq")
UNOP_Q(decq_c1, "stc", "decq")

struct op {
    const char *name;
    uint64_t (*fn)(uint64_t, uint64_t, uint64_t *);
    uint64_t mask; /* flags this op defines */
    int shift;     /* operand b is a shift count */
};

static const struct op ops[] = {
    {"add", addq, ALL, 0},       {"adc0", adcq0, ALL, 0},       {"adc1", adcq1, ALL, 0},
    {"sub", subq, ALL, 0},       {"sbb0", sbbq0, ALL, 0},       {"sbb1", sbbq1, ALL, 0},
    {"and", andq, ALL & ~AF, 0}, {"or", orq, ALL & ~AF, 0},     {"xor", xorq, ALL & ~AF, 0},
    {"cmp", cmpq, ALL, 0},       {"test", testq, ALL & ~AF, 0}, {"imul", imulq, CF | OF, 0},
    {"bt", btq, CF, 0},          {"addl", addl, ALL, 0},        {"adcl1", adcl1, ALL, 0},
    {"subl", subl, ALL, 0},      {"sbbl1", sbbl1, ALL, 0},      {"xorl", xorl, ALL & ~AF, 0},
    {"addb", addb, ALL, 0},      {"subb", subb, ALL, 0},        {"adcb1", adcb1, ALL, 0},
    {"shl", shlq, ALL & ~AF, 1}, {"shr", shrq, ALL & ~AF, 1},   {"sar", sarq, ALL & ~AF, 1},
    {"rol", rolq, CF, 1},        {"ror", rorq, CF, 1},          {"neg", negq, ALL, 0},
    {"not", notq, ALL, 0},       {"inc_c0", incq_c0, ALL, 0},   {"inc_c1", incq_c1, ALL, 0},
    {"dec_c1", decq_c1, ALL, 0},
};

static void test_flags(void)
{
    static const unsigned counts[] = {0, 1, 2, 7, 31, 32, 63, 64, 65};
    for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
        uint64_t ophash = 0;
        for (size_t i = 0; i < NVALS; i++) {
            size_t nb = ops[o].shift ? sizeof(counts) / sizeof(counts[0]) : NVALS;
            for (size_t j = 0; j < nb; j++) {
                uint64_t b = ops[o].shift ? counts[j] : vals[j];
                uint64_t fl, mask = ops[o].mask;
                uint64_t r = ops[o].fn(vals[i], b, &fl);
                /* OF is only defined for 1-bit shifts/rotates; a masked count
                 * of 0 leaves all flags alone (CF was cleared before). */
                if (ops[o].shift && (b & 63) != 1)
                    mask &= ~(uint64_t)OF;
                if (ops[o].shift && (b & 63) == 0)
                    mask = CF;
                if (ops[o].fn == notq)
                    mask = CF; /* not changes no flags: CF stays set */
                mix(r);
                mix(fl & mask);
                ophash = ophash * 31 + (fl & mask) + r;
            }
        }
        printf("flags %-7s %016" PRIx64 "\n", ops[o].name, ophash);
    }
    uint64_t fl;
    incq_c1(5, 0, &fl);
    printf("inc keeps CF: %s\n", (fl & CF) ? "yes" : "no");
    notq(5, 0, &fl);
    printf("not keeps CF: %s\n", (fl & CF) ? "yes" : "no");
}

/* setcc / cmov for every condition, as the compiler emits them. */
static void __attribute__((noinline)) test_setcc(void)
{
    unsigned bits = 0;
    uint64_t acc = 0;
    for (size_t i = 0; i < NVALS; i++) {
        for (size_t j = 0; j < NVALS; j++) {
            uint64_t a = vals[i], b = vals[j];
            int64_t sa = (int64_t)a, sb = (int64_t)b;
            int32_t ia = (int32_t)a, ib = (int32_t)b;
            bits = (a == b) | (a != b) << 1 | (a < b) << 2 | (a <= b) << 3 | (a > b) << 4 |
                   (a >= b) << 5 | (sa < sb) << 6 | (sa <= sb) << 7 | (sa > sb) << 8 |
                   (sa >= sb) << 9 | (ia < ib) << 10 | (ia > ib) << 11 | (sa < 0) << 12 |
                   ((uint8_t)a < (uint8_t)b) << 13 | (__builtin_parityll(a & 0xff)) << 14;
            acc = acc * 131 + bits;
            /* cmov-friendly selects */
            uint64_t m1 = a < b ? a : b;
            int64_t m2 = sa > sb ? sa : sb;
            int32_t m3 = ia < ib ? ib : ia;
            acc += m1 ^ (uint64_t)m2 ^ (uint64_t)(int64_t)m3;
        }
    }
    printf("setcc/cmov %016" PRIx64 "\n", acc);
}

static void test_overflow(void)
{
    uint64_t acc = 0;
    unsigned count = 0;
    for (size_t i = 0; i < NVALS; i++) {
        for (size_t j = 0; j < NVALS; j++) {
            uint64_t a = vals[i], b = vals[j], r;
            int64_t sr;
            int32_t ir;
            uint32_t ur;
            unsigned ov = 0;
            ov |= __builtin_add_overflow(a, b, &r);
            acc += r;
            ov |= __builtin_sub_overflow(a, b, &r) << 1;
            acc += r;
            ov |= __builtin_mul_overflow(a, b, &r) << 2;
            acc += r;
            ov |= __builtin_add_overflow((int64_t)a, (int64_t)b, &sr) << 3;
            acc += (uint64_t)sr;
            ov |= __builtin_sub_overflow((int64_t)a, (int64_t)b, &sr) << 4;
            acc += (uint64_t)sr;
            ov |= __builtin_mul_overflow((int64_t)a, (int64_t)b, &sr) << 5;
            acc += (uint64_t)sr;
            ov |= __builtin_add_overflow((int32_t)a, (int32_t)b, &ir) << 6;
            acc += (uint64_t)ir;
            ov |= __builtin_mul_overflow((uint32_t)a, (uint32_t)b, &ur) << 7;
            acc += ur;
            count += __builtin_popcount(ov);
            acc = acc * 3 + ov;

            /* cross-check unsigned add/sub overflow against 128-bit math */
            unsigned __int128 w = (unsigned __int128)a + b;
            if (__builtin_add_overflow(a, b, &r) != (w >> 64 != 0)) {
                printf("FAIL add overflow %zu %zu\n", i, j);
                exit(1);
            }
            unsigned __int128 p = (unsigned __int128)a * b;
            if (__builtin_mul_overflow(a, b, &r) != (p >> 64 != 0) || r != (uint64_t)p) {
                printf("FAIL mul overflow %zu %zu\n", i, j);
                exit(1);
            }
        }
    }
    printf("overflow %016" PRIx64 " count %u\n", acc, count);
}

/* Multi-word arithmetic: the compiler emits add/adc and sub/sbb chains. */
typedef unsigned __int128 u128;

static void test_wide(void)
{
    u128 x = 1, fact = 1;
    for (int i = 1; i <= 34; i++) {
        fact *= (u128)i; /* 34! fits in 128 bits */
        x = x * 0x9e3779b97f4a7c15ULL + (u128)vals[i % NVALS];
    }
    printf("34! = %016" PRIx64 "%016" PRIx64 "\n", (uint64_t)(fact >> 64), (uint64_t)fact);
    printf("lcg128 = %016" PRIx64 "%016" PRIx64 "\n", (uint64_t)(x >> 64), (uint64_t)x);
    u128 q = fact / 0x123456789ULL, r = fact % 0x123456789ULL;
    printf("div128 q=%016" PRIx64 "%016" PRIx64 " r=%" PRIu64 "\n", (uint64_t)(q >> 64),
           (uint64_t)q, (uint64_t)r);
    __int128 s = -(__int128)fact / 7;
    printf("sdiv128 %016" PRIx64 "%016" PRIx64 "\n", (uint64_t)((u128)s >> 64), (uint64_t)s);

    /* explicit adc/sbb chain over 4 words */
    uint64_t a[4] = {~0ULL, ~0ULL, 5, 7}, b[4] = {1, 0, ~0ULL, 1}, c[4];
    unsigned char carry = 0;
    for (int i = 0; i < 4; i++)
        carry = _addcarry_u64(carry, a[i], b[i], (unsigned long long *)&c[i]);
    printf("add256 %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " carry %u\n", c[3],
           c[2], c[1], c[0], carry);
    unsigned char borrow = 0;
    for (int i = 0; i < 4; i++)
        borrow = _subborrow_u64(borrow, b[i], a[i], (unsigned long long *)&c[i]);
    printf("sub256 %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " borrow %u\n", c[3],
           c[2], c[1], c[0], borrow);
}

static void test_misc(void)
{
    uint64_t acc = 0;
    for (size_t i = 0; i < NVALS; i++) {
        uint64_t v = vals[i];
        int64_t sv = (int64_t)v;
        acc = acc * 7 + (uint64_t)__builtin_popcountll(v);
        acc = acc * 7 + (v ? (uint64_t)__builtin_clzll(v) : 64);
        acc = acc * 7 + (v ? (uint64_t)__builtin_ctzll(v) : 64);
        acc = acc * 7 + __builtin_bswap64(v) + __builtin_bswap32((uint32_t)v);
        acc = acc * 7 + (v << 13 | v >> 51); /* rol */
        acc = acc * 7 + (uint64_t)(sv >> 17);
        for (size_t j = 0; j < NVALS; j++) {
            uint64_t d = vals[j];
            int64_t sd = (int64_t)d;
            if (d != 0) {
                acc += v / d + v % d;
                acc += (uint32_t)v / ((uint32_t)d ? (uint32_t)d : 1);
                if (!(sv == INT64_MIN && sd == -1))
                    acc += (uint64_t)(sv / sd) ^ (uint64_t)(sv % sd);
            }
            acc += (uint64_t)(((u128)v * d) >> 64);
            acc += (uint64_t)(((__int128)sv * sd) >> 64);
        }
    }
    printf("misc %016" PRIx64 "\n", acc);
    volatile int32_t m = -7, n = 2;
    printf("idiv %d %d %d %d\n", m / n, m % n, -m / n, m / -n);
}

int main(void)
{
    test_flags();
    test_setcc();
    test_overflow();
    test_wide();
    test_misc();
    printf("hash %016" PRIx64 "\n", hash);
    return 0;
}
