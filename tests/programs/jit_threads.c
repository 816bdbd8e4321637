/* JIT-like code generation by several threads at once: each thread keeps
 * rewriting and calling functions in its own RWX page, threads write code
 * into a shared RWX page that other threads then call (cross-modifying
 * code, ordered by barriers), threads rewrite and call their own parts of
 * one shared page all at once, and W^X pages flip between RW and RX with
 * mprotect. A translator must notice every rewrite whichever thread made
 * it and never run a stale translation. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define THREADS 4
#define ITER 300
#define SHARED_ROUNDS 100

typedef int (*fn_t)(int);

/* int f(int x) { return x * mul + add; } */
static void emit_affine(unsigned char *p, int32_t mul, int32_t add)
{
    p[0] = 0x89, p[1] = 0xf8; /* mov %edi,%eax */
    p[2] = 0x69, p[3] = 0xc0; /* imul $mul,%eax,%eax */
    memcpy(p + 4, &mul, 4);
    p[8] = 0x05; /* add $add,%eax */
    memcpy(p + 9, &add, 4);
    p[13] = 0xc3; /* ret */
}

/* int f(int n) { int s = 0; do s += k; while (--n); return s; } (n > 0) */
static void emit_loop(unsigned char *p, int8_t k)
{
    static const unsigned char code[] = {
        0x31, 0xc0,       /* xor %eax,%eax   */
        0x83, 0xc0, 0x00, /* add $k,%eax     */
        0xff, 0xcf,       /* dec %edi        */
        0x75, 0xf9,       /* jnz -7 (to add) */
        0xc3,             /* ret             */
    };
    memcpy(p, code, sizeof code);
    p[4] = (unsigned char)k;
}

static long pg;
static unsigned char *shared_page;
static pthread_barrier_t barrier;

struct result {
    int private_bad, shared_bad, wx_bad;
    long sum;
};

static void *worker(void *arg)
{
    int id = (int)(uintptr_t)arg;
    static struct result results[THREADS];
    struct result *r = &results[id];

    /* 1: a private RWX page, rewritten in place over and over */
    unsigned char *mine =
        mmap(NULL, pg, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mine == MAP_FAILED) {
        r->private_bad = -1;
        return r;
    }
    for (int i = 0; i < ITER; i++) {
        int mul = id * 1000 + i, add = i - id;
        emit_affine(mine, mul, add);
        int got = ((fn_t)(void *)mine)(3);
        r->private_bad += got != 3 * mul + add;
        r->sum += got;
        emit_loop(mine + 64, (int8_t)(i % 100 + id));
        got = ((fn_t)(void *)(mine + 64))(50 + i);
        r->private_bad += got != (50 + i) * (i % 100 + id);
        r->sum += got;
    }

    /* 2: the shared page: each thread writes its slot, then calls the
     * next thread's slot, which that thread has just rewritten */
    for (int round = 0; round < SHARED_ROUNDS; round++) {
        emit_affine(shared_page + 64 * id, 1, round * 100 + id);
        pthread_barrier_wait(&barrier);
        int other = (id + 1) % THREADS;
        int got = ((fn_t)(void *)(shared_page + 64 * other))(0);
        r->shared_bad += got != round * 100 + other;
        r->sum += got;
        pthread_barrier_wait(&barrier);
    }

    /* 2b: no barriers: every thread rewrites and calls its own slot of the
     * shared page at the same time as the others (same page, other bytes) */
    for (int i = 0; i < ITER; i++) {
        unsigned char *slot = shared_page + 1024 + 128 * id;
        emit_affine(slot, i + 1, id);
        int got = ((fn_t)(void *)slot)(i);
        r->shared_bad += got != i * (i + 1) + id;
        emit_loop(slot + 64, (int8_t)(id + 1));
        got = ((fn_t)(void *)(slot + 64))(i + 1);
        r->shared_bad += got != (i + 1) * (id + 1);
        r->sum += got;
    }

    /* 3: W^X: write while RW, call while RX */
    for (int i = 0; i < 50; i++) {
        mprotect(mine, pg, PROT_READ | PROT_WRITE);
        emit_affine(mine + 128, 7, id * 50 + i);
        mprotect(mine, pg, PROT_READ | PROT_EXEC);
        int got = ((fn_t)(void *)(mine + 128))(i);
        r->wx_bad += got != 7 * i + id * 50 + i;
        r->sum += got;
    }
    munmap(mine, pg);
    return r;
}

int main(void)
{
    pg = sysconf(_SC_PAGESIZE);
    shared_page =
        mmap(NULL, pg, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared_page == MAP_FAILED)
        return 1;
    pthread_barrier_init(&barrier, NULL, THREADS);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    long total = 0;
    for (int i = 0; i < THREADS; i++) {
        void *p;
        pthread_join(t[i], &p);
        struct result *r = p;
        printf("thread %d: private rewrites wrong %d, shared-page calls wrong %d, W^X calls wrong "
               "%d, sum %ld\n",
               i, r->private_bad, r->shared_bad, r->wx_bad, r->sum);
        total += r->sum;
    }
    printf("total %ld\n", total);
    return 0;
}
