/* mb-recurse: deep recursion, i.e. many calls and returns whose return
 * addresses overflow any hardware or translator return-address stack.
 * Usage: mb-recurse N (N descents to depth 10000 and back). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static volatile uint64_t sink;
__attribute__((noinline, noipa)) static uint64_t down(unsigned d, uint64_t x)
{
    if (d == 0)
        return x;
    uint64_t r = down(d - 1, x * 31 + d);
    sink = r; /* work after the call keeps it a real call/return pair */
    return r + d;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000;
    uint64_t h = (uint64_t)n;
    for (long i = 0; i < n; i++)
        h = h * 31 + down(10000, h ^ (uint64_t)i);
    printf("recurse %ld %016llx\n", n, (unsigned long long)h);
    return 0;
}
