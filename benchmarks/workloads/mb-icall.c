/* mb-icall: indirect calls through a function table. Usage: mb-icall N
 * (N calls). Targets are picked by a run-time PRNG so they cannot be
 * devirtualized; stresses indirect-branch lookup in a translator. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NOINL __attribute__((noinline, noipa))
NOINL static uint32_t f0(uint32_t x)
{
    return x + 1;
}
NOINL static uint32_t f1(uint32_t x)
{
    return x ^ 0x55;
}
NOINL static uint32_t f2(uint32_t x)
{
    return x * 3;
}
NOINL static uint32_t f3(uint32_t x)
{
    return x - 7;
}
NOINL static uint32_t f4(uint32_t x)
{
    return x << 1 | x >> 31;
}
NOINL static uint32_t f5(uint32_t x)
{
    return ~x;
}
NOINL static uint32_t f6(uint32_t x)
{
    return x + (x >> 3);
}
NOINL static uint32_t f7(uint32_t x)
{
    return x ^ (x << 5);
}
static uint32_t (*const tab[8])(uint32_t) = {f0, f1, f2, f3, f4, f5, f6, f7};

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    uint32_t r = 2463534242u ^ (uint32_t)n, x = 0;
    for (long i = 0; i < n; i++) {
        r ^= r << 13;
        r ^= r >> 17;
        r ^= r << 5;
        x = tab[r & 7](x);
    }
    printf("icall %ld %08x\n", n, x);
    return 0;
}
