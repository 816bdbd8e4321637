/* setjmp/longjmp: non-local jumps restore %rsp/%rip from a buffer whose
 * pointers glibc mangles with a guard stored at %fs:0x30, so this also
 * depends on the guest's fs base being right. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static jmp_buf env;
static sigjmp_buf senv;
static int depth_reached;

/* Called through a volatile pointer so gcc cannot tell it never returns. */
static void jump_out(int v)
{
    longjmp(env, v);
}
static void (*volatile jump_fn)(int) = jump_out;

static void __attribute__((noinline)) dive(int n)
{
    char pad[64];
    memset(pad, n, sizeof pad);
    __asm__ volatile("" ::"r"(pad) : "memory");
    if (n == 0) {
        depth_reached = 1;
        jump_fn(7);
        return;
    }
    dive(n - 1);
    depth_reached = -1; /* never reached */
}

static int __attribute__((noinline)) nested(int level)
{
    jmp_buf inner;
    int r = setjmp(inner);
    if (r == 0) {
        if (level > 0) {
            int v = nested(level - 1);
            longjmp(inner, v + 1);
        }
        return 1;
    }
    return r * 2;
}

static void handler(int sig)
{
    siglongjmp(senv, sig);
}

int main(void)
{
    volatile int counter = 0;
    int r = setjmp(env);
    printf("setjmp returned %d (counter %d)\n", r, counter);
    if (counter < 3) {
        counter++;
        longjmp(env, counter * 10);
    }

    /* longjmp(env, 0) must make setjmp return 1 */
    volatile int zero_done = 0;
    r = setjmp(env);
    if (!zero_done) {
        zero_done = 1;
        longjmp(env, 0);
    }
    printf("longjmp(0) gives %d\n", r);

    /* out of 2000 frames */
    if ((r = setjmp(env)) == 0)
        dive(2000);
    printf("from deep: %d reached=%d\n", r, depth_reached);

    printf("nested: %d\n", nested(10));

    /* siglongjmp out of a signal handler must restore the signal mask */
    signal(SIGUSR1, handler);
    sigset_t cur;
    r = sigsetjmp(senv, 1);
    if (r == 0) {
        raise(SIGUSR1);
        printf("not reached\n");
    }
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("siglongjmp from handler: %d, SIGUSR1 blocked after: %d\n", r,
           sigismember(&cur, SIGUSR1));

    /* sigsetjmp(.., 0) does not restore: the mask stays as in the handler */
    r = sigsetjmp(senv, 0);
    if (r == 0) {
        raise(SIGUSR1);
        printf("not reached\n");
    }
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("sigsetjmp(0): %d, SIGUSR1 blocked after: %d\n", r, sigismember(&cur, SIGUSR1));
    return 0;
}
