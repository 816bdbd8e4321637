/* The whole vector and x87 state across every way a thread leaves
 * translated code for the runtime and comes back: zmm0-31 (or ymm0-15, or
 * xmm0-15, as the CPU has), k0-7, MXCSR with a rounding mode and a sticky
 * flag, and eight values on the x87 stack under a changed control word are
 * loaded, then one of: cpuid (answered by the runtime), a system call the
 * runtime emulates, a signal sent to itself, a signal that arrives while
 * the thread spins in a loop; then everything is stored and compared. The
 * signal handler clobbers the registers itself (sigreturn must bring them
 * back) and reports the control words it started with (the kernel gives
 * handlers the initial ones). A new thread reports the control words it
 * inherited. The first trips run again with the upper halves of the
 * first 16 vector registers zero. Prints which registers differ, if any. */
#include <cpuid.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

/* The image the routines below load and store. */
#define VEC 0      /* 32 vector registers, 64 bytes apart */
#define KREGS 2048 /* k0-7 */
#define MXCSR 2112 /* 4 bytes */
#define FCW 2116   /* 2 bytes */
#define X87 2128   /* st values, 16 bytes apart (10 used), st7 first */
#define IMAGE 2256

/* A trip out of the cache: nr -1 spins until *a1 is nonzero (a signal's
 * handler sets it); a NULL trip executes cpuid; else a system call. */
struct trip {
    long nr, a1, a2, a3, a4;
};

/* fp_roundtrip_{avx512,avx,sse}(const uint8_t *want, uint8_t *got,
 * const struct trip *trip): load want, make the trip, store into got.
 * MXCSR and the x87 control word are put back before returning (the ABI
 * has them callee-saved). */
#define ROUNDTRIP(NAME, LOAD_VEC, STORE_VEC)                                                       \
    __asm__(".text\n"                                                                              \
            ".type " #NAME ", @function\n" #NAME ":\n"                                             \
            "push %rbx\n push %r12\n push %r13\n push %r14\n sub $24, %rsp\n"                      \
            "stmxcsr (%rsp)\n fnstcw 4(%rsp)\n"                                                    \
            "mov %rdi, %r12\n mov %rsi, %r13\n mov %rdx, %r14\n" LOAD_VEC                          \
            "ldmxcsr 2112(%r12)\n fldcw 2116(%r12)\n"                                              \
            ".irp n, 0, 1, 2, 3, 4, 5, 6, 7\n fldt 2128+16*\\n(%r12)\n .endr\n"                    \
            "test %r14, %r14\n jnz 1f\n"                                                           \
            "xor %eax, %eax\n xor %ecx, %ecx\n cpuid\n jmp 3f\n"                                   \
            "1: mov (%r14), %rax\n cmp $-1, %rax\n jne 2f\n"                                       \
            "mov 8(%r14), %rax\n"                                                                  \
            "4: cmpl $0, (%rax)\n je 4b\n jmp 3f\n"                                                \
            "2: mov 8(%r14), %rdi\n mov 16(%r14), %rsi\n mov 24(%r14), %rdx\n"                     \
            "mov 32(%r14), %r10\n syscall\n"                                                       \
            "3:\n" STORE_VEC "stmxcsr 2112(%r13)\n fnstcw 2116(%r13)\n"                            \
            ".irp n, 7, 6, 5, 4, 3, 2, 1, 0\n fstpt 2128+16*\\n(%r13)\n .endr\n"                   \
            "ldmxcsr (%rsp)\n fldcw 4(%rsp)\n"                                                     \
            "add $24, %rsp\n pop %r14\n pop %r13\n pop %r12\n pop %rbx\n ret\n"                    \
            ".size " #NAME ", .-" #NAME "\n")

ROUNDTRIP(fp_roundtrip_avx512,
          ".irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, "
          "22, 23, 24, 25, 26, 27, 28, 29, 30, 31\n vmovdqu64 64*\\n(%r12), %zmm\\n\n .endr\n"
          ".irp n, 0, 1, 2, 3, 4, 5, 6, 7\n kmovq 2048+8*\\n(%r12), %k\\n\n .endr\n",
          ".irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, "
          "22, 23, 24, 25, 26, 27, 28, 29, 30, 31\n vmovdqu64 %zmm\\n, 64*\\n(%r13)\n .endr\n"
          ".irp n, 0, 1, 2, 3, 4, 5, 6, 7\n kmovq %k\\n, 2048+8*\\n(%r13)\n .endr\n vzeroupper\n");
ROUNDTRIP(fp_roundtrip_avx,
          ".irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15\n"
          " vmovdqu 64*\\n(%r12), %ymm\\n\n .endr\n",
          ".irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15\n"
          " vmovdqu %ymm\\n, 64*\\n(%r13)\n .endr\n vzeroupper\n");
ROUNDTRIP(fp_roundtrip_sse,
          ".irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15\n"
          " movdqu 64*\\n(%r12), %xmm\\n\n .endr\n",
          ".irp n, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15\n"
          " movdqu %xmm\\n, 64*\\n(%r13)\n .endr\n");

void fp_roundtrip_avx512(const uint8_t *want, uint8_t *got, const struct trip *trip);
void fp_roundtrip_avx(const uint8_t *want, uint8_t *got, const struct trip *trip);
void fp_roundtrip_sse(const uint8_t *want, uint8_t *got, const struct trip *trip);

static void (*roundtrip)(const uint8_t *, uint8_t *, const struct trip *);
static int vec_bytes, n_vec, n_k;

/* Clobbers what the handler may: every vector register, k0-7, MXCSR, the
 * x87 stack and control word (after noting the control words it got). */
static volatile uint32_t handler_mxcsr, handler_fcw;
static volatile int handled;

static void on_signal(int sig)
{
    (void)sig;
    uint32_t mxcsr = 0;
    uint16_t fcw = 0;
    __asm__ volatile("stmxcsr %0\n fnstcw %1" : "=m"(mxcsr), "=m"(fcw));
    handler_mxcsr = mxcsr;
    handler_fcw = fcw;
    static uint8_t junk[IMAGE], out[IMAGE];
    memset(junk, 0x5a, sizeof junk);
    uint32_t m = 0x1f80 | 0x2000;
    memcpy(junk + MXCSR, &m, 4);
    uint16_t c = 0x077f;
    memcpy(junk + FCW, &c, 2);
    for (int i = 0; i < 8; i++) {
        long double v = -1.0L - i;
        memcpy(junk + X87 + 16 * i, &v, 10);
    }
    roundtrip(junk, out, &(struct trip){SYS_getppid, 0, 0, 0, 0});
    handled = 1;
}

static uint8_t want[IMAGE], got[IMAGE];

static void fill_want(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < KREGS + 64; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        want[i] = (uint8_t)x;
    }
    uint32_t m = 0x1f80 | 0x6000 | 0x20; /* toward zero, inexact flag set */
    memcpy(want + MXCSR, &m, 4);
    uint16_t c = 0x0f7f; /* toward zero */
    memcpy(want + FCW, &c, 2);
    for (int i = 0; i < 8; i++) {
        long double v = (i + 1) / 7.0L;
        memcpy(want + X87 + 16 * i, &v, 10);
    }
}

static void check(const char *name, const struct trip *trip)
{
    memset(got, 0, sizeof got);
    roundtrip(want, got, trip);
    int bad = 0;
    for (int r = 0; r < n_vec; r++)
        if (memcmp(want + VEC + 64 * r, got + VEC + 64 * r, vec_bytes)) {
            printf("%s: vector register %d differs\n", name, r);
            bad++;
        }
    for (int k = 0; k < n_k; k++)
        if (memcmp(want + KREGS + 8 * k, got + KREGS + 8 * k, 8)) {
            printf("%s: k%d differs\n", name, k);
            bad++;
        }
    uint32_t wm, gm;
    memcpy(&wm, want + MXCSR, 4);
    memcpy(&gm, got + MXCSR, 4);
    if (wm != gm) {
        printf("%s: MXCSR %#x, not %#x\n", name, gm, wm);
        bad++;
    }
    if (memcmp(want + FCW, got + FCW, 2)) {
        printf("%s: x87 control word differs\n", name);
        bad++;
    }
    for (int i = 0; i < 8; i++)
        if (memcmp(want + X87 + 16 * i, got + X87 + 16 * i, 10)) {
            printf("%s: x87 value %d differs\n", name, i);
            bad++;
        }
    printf("%s: %s\n", name, bad ? "state lost" : "state kept");
}

static void *thread_main(void *arg)
{
    uint32_t *out = arg;
    uint16_t fcw;
    __asm__ volatile("stmxcsr %0\n fnstcw %1" : "=m"(out[0]), "=m"(fcw));
    out[1] = fcw;
    return NULL;
}

int main(void)
{
    unsigned a, b, c, d;
    uint64_t xcr0 = 0;
    __cpuid(1, a, b, c, d);
    if (c & bit_OSXSAVE) {
        uint32_t lo, hi;
        __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = (uint64_t)hi << 32 | lo;
    }
    __cpuid_count(7, 0, a, b, c, d);
    if ((xcr0 & 0xe6) == 0xe6 && (b & bit_AVX512F) && (b & bit_AVX512BW)) {
        roundtrip = fp_roundtrip_avx512, vec_bytes = 64, n_vec = 32, n_k = 8;
    } else if ((xcr0 & 6) == 6) {
        roundtrip = fp_roundtrip_avx, vec_bytes = 32, n_vec = 16;
    } else {
        roundtrip = fp_roundtrip_sse, vec_bytes = 16, n_vec = 16;
    }
    printf("registers: %d of %d bytes, %d mask registers\n", n_vec, vec_bytes, n_k);
    fill_want();

    check("cpuid", NULL);
    sigset_t old;
    check("emulated system call", &(struct trip){SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&old, 8});
    check("system call", &(struct trip){SYS_getppid, 0, 0, 0, 0});
    /* the same with the upper halves of the first 16 registers zero, as
     * SSE code leaves them (dbo restores them with vzeroupper then) */
    uint8_t saved[KREGS];
    memcpy(saved, want, sizeof saved);
    for (int r = 0; r < 16; r++)
        memset(want + VEC + 64 * r + 16, 0, 48);
    check("cpuid, upper halves zero", NULL);
    check("emulated system call, upper halves zero",
          &(struct trip){SYS_rt_sigprocmask, SIG_BLOCK, 0, (long)&old, 8});
    memcpy(want, saved, sizeof saved);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    check("signal to itself",
          &(struct trip){SYS_tgkill, getpid(), (long)syscall(SYS_gettid), SIGUSR1, 0});
    printf("handler started with MXCSR %#x, x87 control word %#x\n", handler_mxcsr, handler_fcw);

    handled = 0;
    handler_mxcsr = handler_fcw = 0;
    struct itimerval t = {.it_value = {0, 20000}};
    setitimer(ITIMER_REAL, &t, NULL);
    check("signal while spinning", &(struct trip){-1, (long)&handled, 0, 0, 0});
    printf("handler started with MXCSR %#x, x87 control word %#x\n", handler_mxcsr, handler_fcw);

    /* A new thread starts with its creator's control words. */
    uint32_t m = 0x1f80 | 0x4000, inherited[2];
    uint16_t cw = 0x0b7f, saved_cw;
    uint32_t saved_m;
    __asm__ volatile("stmxcsr %0\n fnstcw %1" : "=m"(saved_m), "=m"(saved_cw));
    __asm__ volatile("ldmxcsr %0\n fldcw %1" ::"m"(m), "m"(cw));
    pthread_t th;
    int err = pthread_create(&th, NULL, thread_main, inherited);
    __asm__ volatile("ldmxcsr %0\n fldcw %1" ::"m"(saved_m), "m"(saved_cw));
    if (err) {
        printf("pthread_create failed\n");
        return 1;
    }
    pthread_join(th, NULL);
    printf("thread started with MXCSR %#x, x87 control word %#x\n", inherited[0], inherited[1]);
    return 0;
}
