/* Floating-point formatting and parsing: printf's %f/%e/%g/%a with many
 * precisions and edge values (printf uses multi-precision integer code and
 * the FPU), strtod round trips, and libm functions (whose glibc versions
 * are picked by cpuid: FMA/AVX2 variants). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    static const double vals[] = {0.0,
                                  -0.0,
                                  1.0,
                                  -1.5,
                                  0.1,
                                  0.1 + 0.2,
                                  1.0 / 3.0,
                                  2.5,
                                  3.5,
                                  1e-300,
                                  4.9406564584124654e-324,
                                  2.2250738585072014e-308,
                                  DBL_MAX,
                                  123456789.125,
                                  9007199254740993.0,
                                  1e21,
                                  6.02214076e23,
                                  -273.15,
                                  M_PI,
                                  M_E};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        double v = vals[i];
        printf("%.17g | %f | %.3e | %g | %a | %12.4f | %-+10.2g|\n", v, v > 1e20 ? 0 : v, v, v, v,
               v > 1e20 ? 0 : v, v);
    }
    volatile double zero = 0.0;
    printf("inf %f %e %g; -inf %f; nan %f %g\n", 1 / zero, 1 / zero, 1 / zero, -1 / zero,
           zero / zero, -(zero / zero));
    printf("rounding: %.0f %.0f %.0f %.0f %.1f %.2f %.1f\n", 0.5, 1.5, 2.5, -0.5, 0.25, 1.005,
           0.05);
    printf("float: %f %.10f %a\n", 1.1f, (double)(1.0f / 3.0f), (double)FLT_MIN);
    printf("long double: %.25Lf %Lg %La\n", 1.0L / 3.0L, 1e4000L, 0.1L);
    printf("big: %.0f\n", 1e300);
    printf("%%.40f of 0.1: %.40f\n", 0.1);

    /* strtod/printf round trip on pseudo-random bit patterns */
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    int roundtrip_ok = 0, tested = 0;
    double sum = 0;
    for (int i = 0; i < 20000; i++) {
        s ^= s << 7;
        s ^= s >> 9;
        double d;
        uint64_t bits = s & 0x7fefffffffffffffULL; /* finite */
        memcpy(&d, &bits, sizeof d);
        char buf[64];
        snprintf(buf, sizeof buf, "%.17g", d);
        double back = strtod(buf, NULL);
        tested++;
        roundtrip_ok += memcmp(&back, &d, sizeof d) == 0;
        snprintf(buf, sizeof buf, "%a", d);
        roundtrip_ok += strtod(buf, NULL) == d;
        if (fabs(d) < 1e10 && fabs(d) > 1e-10)
            sum += d;
    }
    printf("round trips: %d of %d; sum %.17g\n", roundtrip_ok, 2 * tested, sum);
    printf("strtod: %.17g %.17g %.17g %g %g\n", strtod("0.1", NULL),
           strtod("2.2250738585072011e-308", NULL), strtod("1e-320", NULL), strtod("inf", NULL),
           strtod("0x1.8p3", NULL));

    /* libm */
    double acc = 0;
    for (int i = 1; i <= 20000; i++) {
        double x = i * 0.001;
        acc += sin(x) * cos(x) + exp(-x) + log(x) + pow(x, 1.5) + atan2(x, 1 - x) + sqrt(x) +
               cbrt(x) + tanh(x) + expm1(-x) + log1p(x) + hypot(x, 3);
    }
    printf("libm sum %.17g\n", acc);
    printf("libm: %.17g %.17g %.17g %.17g %.17g\n", sin(1e22), exp(709.0), log(DBL_MIN),
           pow(2, 0.5), tgamma(4.5));
    float facc = 0;
    for (int i = 1; i <= 20000; i++) {
        float x = (float)i * 0.001f;
        facc += sinf(x) + expf(-x) + logf(x) + powf(x, 0.75f);
    }
    printf("libm float sum %.9g\n", (double)facc);
    return 0;
}
