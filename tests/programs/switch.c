/* Big switch statements: dense ones compile to jump tables (an indirect
 * jmp through a table of offsets in .rodata, position-independent in PIE),
 * sparse ones to compare trees. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

// clang-format off
/* Each case computes something different from x, so this cannot become a
 * lookup table of constants: it stays an indirect jump through a table. */
#define C(n) case n: return (x ^ n) * (n | 1) + (x >> (n % 7));
#define C10(n) C(n##0) C(n##1) C(n##2) C(n##3) C(n##4) C(n##5) C(n##6) C(n##7) C(n##8) C(n##9)
// clang-format on

static uint32_t __attribute__((noinline)) dense(unsigned v, uint32_t x)
{
    // clang-format off
    switch (v) {
        C(0) C(1) C(2) C(3) C(4) C(5) C(6) C(7) C(8) C(9)
        C10(1) C10(2) C10(3) C10(4) C10(5) C10(6) C10(7) C10(8) C10(9)
        C10(10) C10(11) C10(12) C10(13) C10(14) C10(15) C10(16) C10(17)
        C10(18) C10(19) C10(20) C10(21) C10(22) C10(23) C10(24)
    default:
        return 0xdead;
    }
    // clang-format on
}

/* Sparse values: a binary decision tree, lots of conditional branches. */
static int __attribute__((noinline)) sparse(long v)
{
    switch (v) {
    case -1000000: return 1;
    case -4096: return 2;
    case -7: return 3;
    case 0: return 4;
    case 13: return 5;
    case 255: return 6;
    case 256: return 7;
    case 1000: return 8;
    case 65535: return 9;
    case 65536: return 10;
    case 1L << 31: return 11;
    case 1L << 40: return 12;
    case 123456789012L: return 13;
    default: return 0;
    }
}

/* Switch in a loop with fallthrough: a tokenizer-like state machine. */
enum { S_START, S_IDENT, S_NUM, S_STR, S_ESC, S_OP };
static void __attribute__((noinline)) lex(const char *s, int counts[6])
{
    int st = S_START;
    for (;; s++) {
        char c = *s;
        switch (st) {
        case S_START:
        start:
            if (c == 0)
                return;
            switch (c) {
            case 'a' ... 'z':
            case 'A' ... 'Z':
            case '_':
                st = S_IDENT;
                counts[S_IDENT]++;
                break;
            case '0' ... '9':
                st = S_NUM;
                counts[S_NUM]++;
                break;
            case '"':
                st = S_STR;
                counts[S_STR]++;
                break;
            // clang-format off
            case '+': case '-': case '*': case '/': case '=': case '<':
            case '>': case '!': case '&': case '|': case '(': case ')':
            case '{': case '}': case ';': case ',':
                // clang-format on
                counts[S_OP]++;
                break;
            default:
                counts[S_START]++; /* whitespace and others */
                break;
            }
            break;
        case S_IDENT:
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_')
                break;
            st = S_START;
            goto start;
        case S_NUM:
            if (c >= '0' && c <= '9')
                break;
            st = S_START;
            goto start;
        case S_STR:
            if (c == '\\')
                st = S_ESC;
            else if (c == '"')
                st = S_START;
            else if (c == 0)
                return;
            break;
        case S_ESC:
            if (c == 0)
                return;
            st = S_STR;
            break;
        }
    }
}

/* A small-range switch returning strings (a table of pointers). */
static const char *__attribute__((noinline)) day(int d)
{
    switch (d) {
    case 0: return "sun";
    case 1: return "mon";
    case 2: return "tue";
    case 3: return "wed";
    case 4: return "thu";
    case 5: return "fri";
    case 6: return "sat";
    }
    return "???";
}

int main(void)
{
    uint64_t acc = 0;
    for (unsigned i = 0; i < 3000000; i++)
        acc = acc * 31 + dense((i * 7919u) % 260, (uint32_t)acc);
    printf("dense: %016llx\n", (unsigned long long)acc);

    static const long probes[] = {-1000000, -4096,         -7,  -6,   0,     1,     13,
                                  255,      256,           257, 1000, 65535, 65536, 1L << 31,
                                  1L << 40, 123456789012L, 42};
    long s = 0;
    for (int r = 0; r < 100000; r++)
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
            s += sparse(probes[i] + (r & 1)) * (long)(i + 1);
    printf("sparse: %ld\n", s);

    const char *src = "int main(void) { int x = 42; char *s = \"a\\\"b\"; "
                      "return x*2+foo_bar(3, 0x1f) | y1 >= 7; }";
    int counts[6] = {0};
    for (int r = 0; r < 2000; r++)
        lex(src, counts);
    printf("lex: other %d ident %d num %d str %d op %d\n", counts[S_START], counts[S_IDENT],
           counts[S_NUM], counts[S_STR], counts[S_OP]);

    for (int d = -1; d < 8; d++)
        printf("%s%c", day(d), d == 7 ? '\n' : ' ');
    return 0;
}
