/* cpuid, rdtsc, rdtscp and xgetbv executed directly by the guest. Only
 * facts that are stable from run to run are printed: the vendor string,
 * a few feature bits, that the OS enabled AVX state, and that the time
 * stamp counter moves forward. */
#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

int main(void)
{
    uint32_t r[4];
    char vendor[13];
    cpuid(0, 0, r);
    uint32_t max_leaf = r[0];
    memcpy(vendor, &r[1], 4);
    memcpy(vendor + 4, &r[3], 4);
    memcpy(vendor + 8, &r[2], 4);
    vendor[12] = 0;
    printf("vendor: %s\n", vendor);
    printf("max basic leaf >= 7: %d\n", max_leaf >= 7);

    cpuid(1, 0, r);
    uint32_t ecx1 = r[2], edx1 = r[3];
    printf("sse2 %d sse4.2 %d osxsave %d avx %d fma %d\n", !!(edx1 & bit_SSE2),
           !!(ecx1 & bit_SSE4_2), !!(ecx1 & bit_OSXSAVE), !!(ecx1 & bit_AVX), !!(ecx1 & bit_FMA));
    cpuid(7, 0, r);
    printf("avx2 %d bmi1 %d bmi2 %d erms %d\n", !!(r[1] & bit_AVX2), !!(r[1] & bit_BMI),
           !!(r[1] & bit_BMI2), !!(r[1] & (1u << 9)));

    /* the compiler's view must agree with the raw bits */
    printf("__builtin_cpu_supports avx2 agrees: %d\n",
           !!__builtin_cpu_supports("avx2") == !!(r[1] & bit_AVX2));

    if (ecx1 & bit_OSXSAVE) {
        uint32_t lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        printf("xcr0: x87 %d sse %d avx %d\n", lo & 1, (lo >> 1) & 1, (lo >> 2) & 1);
    }

    /* The TSC must increase across reads, including across a busy loop. */
    uint64_t prev = rdtsc(), first = prev;
    int monotonic = 1;
    volatile unsigned sink = 0;
    for (int i = 0; i < 100000; i++) {
        sink += (unsigned)i;
        uint64_t t = rdtsc();
        if (t < prev)
            monotonic = 0;
        prev = t;
    }
    printf("rdtsc monotonic: %d, advanced: %d\n", monotonic, prev > first);

    cpuid(0x80000001, 0, r);
    if (r[3] & (1u << 27)) {
        uint32_t lo, hi, aux;
        __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
        uint64_t t = (uint64_t)hi << 32 | lo;
        printf("rdtscp after rdtsc: %d\n", t >= prev);
    } else {
        printf("rdtscp after rdtsc: 1\n");
    }
    return 0;
}
