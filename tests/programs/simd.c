/* SSE, SSE4.2, AVX2 and FMA arithmetic. A translator must decode VEX
 * encodings, keep the upper ymm halves alive (also across syscalls), and
 * get gathers, masked loads, variable shifts and shuffles bit-exact.
 * Requires AVX2 and FMA (the test machines have them); without them it
 * says so, which differs from a native run only if the translator hides
 * features that the CPU has. */
#include <immintrin.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static uint64_t h = 0xcbf29ce484222325ULL;

static void hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
}

static void show(const char *name, const void *p, size_t n)
{
    const uint32_t *w = p;
    printf("%-10s", name);
    for (size_t i = 0; i < n / 4; i++)
        printf(" %08" PRIx32, w[i]);
    printf("\n");
    hash_bytes(p, n);
}

static int32_t in32[64];
static float inf32[64];
static double ind[32];
static uint8_t in8[64];

static void __attribute__((noinline)) sse2(void)
{
    __m128i a = _mm_loadu_si128((const __m128i *)in32);
    __m128i b = _mm_loadu_si128((const __m128i *)(in32 + 4));
    __m128i r[8];
    r[0] = _mm_add_epi32(a, b);
    r[1] = _mm_mullo_epi16(a, b);
    r[2] = _mm_madd_epi16(a, b);
    r[3] = _mm_sad_epu8(a, b);
    r[4] = _mm_shuffle_epi32(a, 0x1b);
    r[5] = _mm_packs_epi32(a, b);
    r[6] = _mm_unpackhi_epi8(a, b);
    r[7] = _mm_srai_epi32(_mm_slli_epi64(a, 7), 3);
    show("sse2 int", r, sizeof r);
    int mask = _mm_movemask_epi8(_mm_cmpeq_epi8(a, _mm_set1_epi8((char)in8[3])));
    printf("movemask   %04x\n", mask);

    __m128 f = _mm_loadu_ps(inf32), g = _mm_loadu_ps(inf32 + 4);
    __m128 fr[6];
    fr[0] = _mm_add_ps(f, g);
    fr[1] = _mm_div_ps(f, g);
    fr[2] = _mm_sqrt_ps(_mm_andnot_ps(_mm_set1_ps(-0.0f), f));
    fr[3] = _mm_min_ps(f, _mm_set_ps(NAN, 0.0f, -1.0f, 1e30f));
    fr[4] = _mm_rcp_ps(_mm_set_ps(1.0f, 2.0f, 4.0f, 8.0f)); /* exact for powers of 2 */
    fr[5] = _mm_castsi128_ps(_mm_cvttps_epi32(_mm_mul_ps(f, _mm_set1_ps(1000.0f))));
    show("sse float", fr, sizeof fr);
    __m128d d = _mm_loadu_pd(ind), e = _mm_loadu_pd(ind + 2);
    __m128d dr[3] = {_mm_mul_pd(d, e), _mm_sqrt_pd(_mm_mul_pd(d, d)),
                     _mm_cvtepi32_pd(_mm_loadu_si128((const __m128i *)in32))};
    show("sse double", dr, sizeof dr);
}

__attribute__((target("sse4.2"))) static void __attribute__((noinline)) sse42(void)
{
    __m128i a = _mm_loadu_si128((const __m128i *)in8);
    __m128i b = _mm_loadu_si128((const __m128i *)(in8 + 16));
    __m128i r[5];
    r[0] = _mm_shuffle_epi8(a, _mm_and_si128(b, _mm_set1_epi8((char)0x8f)));
    r[1] = _mm_min_epi32(a, b);
    r[2] = _mm_blendv_epi8(a, b, _mm_loadu_si128((const __m128i *)(in8 + 32)));
    r[3] = _mm_mullo_epi32(a, b);
    r[4] = _mm_cmpgt_epi64(a, b);
    show("sse4 int", r, sizeof r);
    uint32_t crc = 0xffffffff;
    for (int i = 0; i < 64; i++)
        crc = _mm_crc32_u8(crc, in8[i]);
    crc = (uint32_t)_mm_crc32_u64(crc, 0x0123456789abcdefULL);
    printf("crc32c     %08" PRIx32 "\n", crc);
    printf("ptest      %d %d\n", _mm_testz_si128(a, _mm_setzero_si128()), _mm_testc_si128(a, a));
    const char hay[16] = "hello, world!xyz";
    const char needle[16] = "world";
    __m128i H = _mm_loadu_si128((const __m128i *)hay);
    __m128i N = _mm_loadu_si128((const __m128i *)needle);
    printf("pcmpistri  %d %d\n", _mm_cmpistri(N, H, _SIDD_UBYTE_OPS | _SIDD_CMP_EQUAL_ORDERED),
           _mm_cmpistri(_mm_set1_epi8('o'), H, _SIDD_UBYTE_OPS | _SIDD_CMP_EQUAL_ANY));
}

__attribute__((target("avx2,fma"))) static void __attribute__((noinline)) avx2(void)
{
    __m256i a = _mm256_loadu_si256((const __m256i *)in32);
    __m256i b = _mm256_loadu_si256((const __m256i *)(in32 + 8));
    __m256i idx = _mm256_and_si256(b, _mm256_set1_epi32(7));
    __m256i r[10];
    r[0] = _mm256_add_epi32(a, b);
    r[1] = _mm256_mullo_epi32(a, b);
    r[2] = _mm256_permutevar8x32_epi32(a, idx);
    r[3] = _mm256_shuffle_epi8(a, _mm256_and_si256(b, _mm256_set1_epi8((char)0x8f)));
    r[4] = _mm256_sllv_epi32(a, idx);
    r[5] = _mm256_srav_epi32(b, idx);
    r[6] = _mm256_i32gather_epi32(in32, _mm256_and_si256(b, _mm256_set1_epi32(63)), 4);
    r[7] = _mm256_permute2x128_si256(a, b, 0x21);
    r[8] = _mm256_maskload_epi32(in32 + 16, _mm256_cmpgt_epi32(a, b));
    r[9] = _mm256_hadd_epi32(a, b);
    show("avx2 int", r, sizeof r);
    int32_t out[8] = {0};
    _mm256_maskstore_epi32(out, _mm256_cmpgt_epi32(b, a), a);
    show("maskstore", out, sizeof out);
    printf("vpmovmskb  %08x\n", (unsigned)_mm256_movemask_epi8(_mm256_cmpgt_epi8(a, b)));

    __m256 f = _mm256_loadu_ps(inf32), g = _mm256_loadu_ps(inf32 + 8);
    __m256 fr[5];
    fr[0] = _mm256_mul_ps(f, g);
    fr[1] = _mm256_fmadd_ps(f, g, _mm256_set1_ps(0.1f));
    fr[2] = _mm256_fmsub_ps(f, f, g);
    fr[3] = _mm256_round_ps(_mm256_mul_ps(f, _mm256_set1_ps(100.f)), _MM_FROUND_TO_NEAREST_INT);
    fr[4] = _mm256_i32gather_ps(inf32, _mm256_and_si256(b, _mm256_set1_epi32(31)), 4);
    show("avx float", fr, sizeof fr);

    __m256d d = _mm256_loadu_pd(ind), e = _mm256_loadu_pd(ind + 4);
    __m256d dr[3];
    dr[0] = _mm256_fmadd_pd(d, e, _mm256_set1_pd(1.0 / 3.0));
    dr[1] = _mm256_fnmadd_pd(d, d, e);
    dr[2] = _mm256_i64gather_pd(ind, _mm256_set_epi64x(31, 0, 17, 5), 8);
    show("avx double", dr, sizeof dr);
    /* FMA must round once, like the C library's fma() */
    double vv[4];
    _mm256_storeu_pd(vv, dr[0]);
    int same = 1;
    for (int i = 0; i < 4; i++)
        same &= vv[i] == fma(ind[i], ind[i + 4], 1.0 / 3.0);
    printf("fma matches scalar fma(): %d\n", same);

    /* A long vector loop: dot product and saxpy over 8k floats. */
    static float xs[8192], ys[8192];
    for (int i = 0; i < 8192; i++) {
        xs[i] = (float)(i % 97) * 0.25f;
        ys[i] = (float)(i % 89) * -0.5f;
    }
    __m256 acc = _mm256_setzero_ps();
    for (int rep = 0; rep < 50; rep++)
        for (int i = 0; i < 8192; i += 8) {
            __m256 x = _mm256_loadu_ps(xs + i), y = _mm256_loadu_ps(ys + i);
            acc = _mm256_fmadd_ps(x, y, acc);
            _mm256_storeu_ps(ys + i, _mm256_fmadd_ps(_mm256_set1_ps(0.001f), x, y));
        }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    show("dot", lanes, sizeof lanes);

    /* Upper ymm halves must survive a system call made in between. */
    uint32_t before[8], after[8];
    _mm256_storeu_si256((__m256i *)before, r[1]);
    long ret;
    __asm__ volatile("vmovdqu %[in], %%ymm8\n\t"
                     "syscall\n\t"
                     "vmovdqu %%ymm8, %[out]"
                     : [out] "=m"(after), "=a"(ret)
                     : [in] "m"(before), "a"((long)SYS_getppid)
                     : "rcx", "r11", "xmm8", "memory");
    (void)ret;
    printf("ymm8 survives syscall: %d\n", memcmp(before, after, sizeof after) == 0);
}

int main(void)
{
    uint32_t s = 7;
    for (int i = 0; i < 64; i++) {
        s = s * 1103515245u + 12345u;
        in32[i] = (int32_t)(s ^ (s >> 13));
        in8[i] = (uint8_t)(s >> 19);
        inf32[i] = (float)((int)(s >> 8) % 20001 - 10000) / 37.0f;
        if (i < 32)
            ind[i] = (double)((int)(s >> 4) % 200001 - 100000) / 311.0;
    }
    sse2();
    if (!__builtin_cpu_supports("sse4.2") || !__builtin_cpu_supports("avx2") ||
        !__builtin_cpu_supports("fma")) {
        printf("SKIP: CPU (as reported) lacks sse4.2/avx2/fma\n");
        return 0;
    }
    sse42();
    avx2();
    printf("hash %016" PRIx64 "\n", h);
    return 0;
}
