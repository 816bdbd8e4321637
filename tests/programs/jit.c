/* Run-time generated and self-modifying code. A translator caches
 * translations of guest code, so it must notice when that code changes:
 * after mprotect/munmap/mmap of the page, and when the guest writes into an
 * RWX page it is executing from. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef int (*fn0)(void);
typedef long (*fn1)(long);

/* mov $imm, %eax; ret */
static void emit_const(unsigned char *p, int32_t v)
{
    p[0] = 0xb8;
    memcpy(p + 1, &v, 4);
    p[5] = 0xc3;
}

/* long f(long n) { long s = 0; do s += n * k; while (--n); return s; } */
static void emit_loop(unsigned char *p, int8_t k)
{
    static const unsigned char code[] = {
        0x31, 0xc0,             /* xor %eax,%eax        */
        0x48, 0x6b, 0xd7, 0x00, /* imul $k,%rdi,%rdx    */
        0x48, 0x01, 0xd0,       /* add %rdx,%rax        */
        0x48, 0xff, 0xcf,       /* dec %rdi             */
        0x75, 0xf4,             /* jnz -12 (to imul)    */
        0xc3,                   /* ret                  */
    };
    memcpy(p, code, sizeof code);
    p[5] = (unsigned char)k;
}

int main(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char *m =
        mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 1;

    /* W^X style: write, flip to RX, run; flip back, rewrite, run again */
    int total = 0;
    for (int i = 0; i < 50; i++) {
        mprotect(m, pg, PROT_READ | PROT_WRITE);
        emit_const(m, i * 1000 + 7);
        emit_const(m + 64, -i);
        mprotect(m, pg, PROT_READ | PROT_EXEC);
        int a = ((fn0)m)(), b = ((fn0)(m + 64))();
        if (i < 3 || i == 49)
            printf("rewrite %d: %d %d\n", i, a, b);
        total += a + b;
    }
    printf("mprotect-flip total %d\n", total);

    mprotect(m, pg, PROT_READ | PROT_WRITE);
    emit_loop(m, 3);
    mprotect(m, pg, PROT_READ | PROT_EXEC);
    long r1 = ((fn1)m)(1000000);
    mprotect(m, pg, PROT_READ | PROT_WRITE);
    emit_loop(m, 5);
    mprotect(m, pg, PROT_READ | PROT_EXEC);
    long r2 = ((fn1)m)(1000000);
    printf("generated loop: %ld %ld\n", r1, r2);

    /* unmap and map again at the same address with different code */
    munmap(m, 2 * pg);
    unsigned char *n = mmap(m, pg, PROT_READ | PROT_WRITE | PROT_EXEC,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (n != m)
        return 1;
    emit_const(n, 4242);
    printf("remapped: %d\n", ((fn0)n)());

    /* RWX page modified in place while it is being executed from: the
     * immediate of a mov is patched between calls, no mprotect at all. */
    long sum = 0;
    for (int32_t i = 0; i < 1000; i++) {
        memcpy(n + 1, &i, 4);
        sum += ((fn0)n)();
    }
    printf("self-modified immediate: sum %ld (expect %ld)\n", sum, 999L * 1000 / 2);

    /* code that patches its own next instruction: the store goes to the
     * following mov's immediate, which x86 must then execute as updated */
    static const unsigned char smc[] = {
        0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x2a, /* movb $42, 1(%rip) -> imm of next */
        0xb8, 0x00, 0x00, 0x00, 0x00,             /* mov $0, %eax                    */
        0xc3,                                     /* ret                             */
    };
    memcpy(n + 256, smc, sizeof smc);
    printf("patch-next-instruction: %d\n", ((fn0)(n + 256))());
    memcpy(n + 256, smc, sizeof smc);
    printf("patch-next-instruction again: %d\n", ((fn0)(n + 256))());
    munmap(n, pg);
    return sum == 999L * 1000 / 2 ? 0 : 1;
}
