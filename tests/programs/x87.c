/* x87 long double arithmetic (80-bit, on the x87 register stack), x87
 * transcendental instructions, rounding-mode control through the x87
 * control word and MXCSR, and sticky floating-point exception flags. A
 * translator that emulates x87 with 64-bit doubles, or clobbers the control
 * or status words, shows up here. */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static volatile long double vone = 1.0L, vthree = 3.0L, vtwo = 2.0L;

static void bits(const char *name, long double x)
{
    unsigned char b[16] = {0};
    memcpy(b, &x, 10);
    printf("%-12s %.21Lg  [%02x%02x:%02x%02x%02x%02x%02x%02x%02x%02x]\n", name, x, b[9], b[8], b[7],
           b[6], b[5], b[4], b[3], b[2], b[1], b[0]);
}

static long double x87_fsin(long double x)
{
    __asm__("fsin" : "+t"(x));
    return x;
}

static long double x87_fyl2x(long double x, long double y)
{
    long double r;
    __asm__("fyl2x" : "=t"(r) : "0"(x), "u"(y) : "st(1)");
    return r;
}

static long double x87_fprem(long double x, long double y)
{
    long double r;
    __asm__("1: fprem\n\t"
            "fnstsw %%ax\n\t"
            "testw $0x400, %%ax\n\t"
            "jnz 1b"
            : "=t"(r)
            : "0"(x), "u"(y)
            : "ax", "cc");
    return r;
}

static long double x87_f2xm1(long double x)
{
    __asm__("f2xm1" : "+t"(x));
    return x;
}

static long double x87_frndint(long double x)
{
    __asm__ volatile("frndint" : "+t"(x));
    return x;
}

static long double x87_fpatan(long double y, long double x)
{
    long double r;
    __asm__("fpatan" : "=t"(r) : "0"(x), "u"(y) : "st(1)");
    return r;
}

static long long x87_fistp(long double x)
{
    long long r;
    __asm__ volatile("fistpll %0" : "=m"(r) : "t"(x) : "st");
    return r;
}

static uint16_t get_cw(void)
{
    uint16_t cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw) : : "memory");
    return cw;
}

static void set_cw(uint16_t cw)
{
    __asm__ volatile("fldcw %0" : : "m"(cw) : "memory");
}

/* Deep expression: keeps many values live on the 8-entry x87 stack. */
static long double __attribute__((noinline)) poly(long double x)
{
    return ((((((x * 1.5L + 2.25L) * x - 3.125L) * x + 4.0625L) * x - 5.03125L) * x + 6.015625L) *
                x -
            7.0078125L) /
           (x * x + 1.0L);
}

int main(void)
{
    long double third = vone / vthree;
    bits("1/3", third);
    bits("sqrtl(2)", sqrtl(vtwo));
    bits("eps", LDBL_EPSILON);
    printf("1+eps/2 > 1 (64-bit mantissa): %d\n", vone + LDBL_EPSILON > vone);
    printf("(double)1/3 == 1/3L: %d\n", (long double)(1.0 / 3.0) == third);

    bits("sinl(1)", sinl(vone));
    bits("cosl(1)", cosl(vone));
    bits("expl(1)", expl(vone));
    bits("logl(3)", logl(vthree));
    bits("powl(3,1/3)", powl(vthree, third));
    bits("atan2l", atan2l(vone, vthree));
    bits("fmodl", fmodl(1e20L, vthree));
    bits("tgammal(5.5)", tgammal(5.5L));
    bits("fsin(1)", x87_fsin(vone));
    bits("fyl2x", x87_fyl2x(vthree, vtwo));
    bits("fprem", x87_fprem(1e20L + vone, vthree));
    bits("f2xm1(0.5)", x87_f2xm1(0.5L));
    bits("fpatan", x87_fpatan(vone, vthree));

    long double acc = 0;
    for (int i = 1; i <= 100000; i++)
        acc += poly((long double)i / 997.0L) / (long double)i;
    bits("poly sum", acc);

    /* rounding control: x87 control word */
    uint16_t cw = get_cw();
    printf("default cw: %04x\n", cw);
    static const char *names[4] = {"nearest", "down", "up", "zero"};
    for (int rc = 0; rc < 4; rc++) {
        set_cw((uint16_t)((cw & ~0x0c00) | (rc << 10)));
        /* compute everything before restoring the control word for printf */
        volatile long double r1 = x87_frndint(vtwo + 0.5L), r2 = x87_frndint(-vtwo - 0.5L);
        volatile long long i1 = x87_fistp(-vone - 0.5L);
        volatile long double q = vone / vthree;
        set_cw(cw);
        printf("x87 %-7s frndint(2.5)=%Lg frndint(-2.5)=%Lg fistp(-1.5)=%lld 1/3=%.21Lg\n",
               names[rc], r1, r2, (long long)i1, q);
    }
    set_cw(cw);
    /* precision control: 24-bit mantissa */
    set_cw((uint16_t)(cw & ~0x0300));
    volatile long double p24 = vone / vthree;
    set_cw(cw);
    bits("1/3 @24bit", p24);

    /* rounding via fesetround affects both x87 and SSE */
    static const int modes[4] = {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD, FE_TOWARDZERO};
    volatile double d1 = 1.0, d3 = 3.0;
    for (int i = 0; i < 4; i++) {
        fesetround(modes[i]);
        printf("fesetround %-7s: sse 1/3=%a -1/3=%a rint(2.5)=%g x87 1/3=%La lrint(-2.5)=%ld\n",
               names[i], d1 / d3, -d1 / d3, rint(2.5), vone / vthree, lrint(-2.5));
    }
    fesetround(FE_TONEAREST);

    /* sticky exception flags */
    feclearexcept(FE_ALL_EXCEPT);
    volatile double z = 0.0, big = DBL_MAX;
    printf("flags after clear: %d\n", fetestexcept(FE_ALL_EXCEPT) != 0);
    volatile double r = d1 / z;
    printf("1/0: %g divbyzero %d\n", r, fetestexcept(FE_DIVBYZERO) != 0);
    r = big * 2.0;
    printf("overflow %d inexact %d\n", fetestexcept(FE_OVERFLOW) != 0,
           fetestexcept(FE_INEXACT) != 0);
    feclearexcept(FE_ALL_EXCEPT);
    r = z / z;
    printf("0/0 invalid %d, divbyzero %d\n", fetestexcept(FE_INVALID) != 0,
           fetestexcept(FE_DIVBYZERO) != 0);
    feclearexcept(FE_ALL_EXCEPT);
    volatile long double lz = 0.0L;
    volatile long double lr = vone / lz;
    printf("x87 1/0: %Lg divbyzero %d\n", lr, fetestexcept(FE_DIVBYZERO) != 0);
    feclearexcept(FE_ALL_EXCEPT);
    r = sqrt(d3);
    printf("sqrt(3) inexact %d\n", fetestexcept(FE_INEXACT) != 0);

    /* denormals, infinities, NaN classification */
    volatile long double tiny = LDBL_MIN;
    bits("LDBL_MIN/2^10", tiny / 1024.0L);
    printf("classify: %d %d %d %d\n", fpclassify(tiny / 1024.0L) == FP_SUBNORMAL, isinf(lr),
           isnan(lz / lz), signbit(-lz) != 0);
    return 0;
}
