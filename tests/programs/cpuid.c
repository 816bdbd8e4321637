/* cpuid, rdtsc, rdtscp and xgetbv executed directly by the guest. Only
 * facts that are stable from run to run are printed: the vendor string,
 * a few feature bits, that the OS enabled AVX state, that the time stamp
 * counter moves forward, and every leaf's answer (subleaves 0-3) on each
 * CPU in turn, the thread pinned there (dbo answers cpuid from memory,
 * per CPU for the leaves holding APIC ids), asked twice with junk in the
 * registers' upper halves, which cpuid clears. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <sched.h>
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

/* cpuid with junk in the upper halves of rax/rcx and in rbx/rdx:
 * whether all four come back as 32-bit values */
static int cpuid_clears_upper(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    uint64_t a = 0xdead000000000000ull | leaf, b = ~0ull, c = 0xbeef000000000000ull | sub,
             d = ~0ull;
    __asm__ volatile("cpuid" : "+a"(a), "+b"(b), "+c"(c), "+d"(d));
    r[0] = (uint32_t)a, r[1] = (uint32_t)b, r[2] = (uint32_t)c, r[3] = (uint32_t)d;
    return ((a | b | c | d) >> 32) == 0;
}

/* An FNV-1a hash of every leaf's answer, subleaves 0-3, on this CPU. */
static uint64_t all_leaves(int *upper_ok)
{
    uint64_t h = 0xcbf29ce484222325ull;
    uint32_t r[4], base[4], ext[4];
    cpuid(0, 0, base);
    cpuid(0x80000000, 0, ext);
    for (int range = 0; range < 2; range++) {
        uint32_t first = range ? 0x80000000 : 0, last = range ? ext[0] : base[0];
        if (last - first > 0x40)
            last = first + 0x40;
        for (uint32_t leaf = first; leaf <= last; leaf++) {
            for (uint32_t sub = 0; sub < 4; sub++) {
                uint32_t again[4];
                cpuid(leaf, sub, r);
                *upper_ok &= cpuid_clears_upper(leaf, sub, again);
                *upper_ok &= memcmp(r, again, sizeof r) == 0;
                for (int i = 0; i < 4; i++)
                    h = (h ^ r[i]) * 0x100000001b3ull;
            }
        }
    }
    return h;
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

    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
        int upper_ok = 1;
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            if (!CPU_ISSET(cpu, &allowed) || sched_setaffinity(0, sizeof one, &one))
                continue;
            printf("cpu %d: leaves %016llx\n", cpu, (unsigned long long)all_leaves(&upper_ok));
        }
        printf("upper halves cleared, answers repeat: %d\n", upper_ok);
    }
    return 0;
}
