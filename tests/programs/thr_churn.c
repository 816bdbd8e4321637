/* Thread churn: 2000 short-lived threads created and joined in batches,
 * 64 threads alive at once computing and combining results, detached
 * threads, user-supplied stacks reused by one thread after another, and
 * glibc's own stack cache. A translator must give every new thread its own
 * context and drop it again when the thread is gone. */
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHURN 2000
#define BATCH 50
#define WIDE 64

static void die(const char *what, int err)
{
    fprintf(stderr, "%s: %s\n", what, strerror(err));
    exit(1);
}

/* --- 2000 short-lived threads ------------------------------------------ */

static void *short_lived(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    uint64_t h = i * 0x9e3779b97f4a7c15ULL;
    for (int k = 0; k < 50; k++)
        h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ULL + k;
    if (i % 3 == 0)
        pthread_exit((void *)(uintptr_t)(h & 0xffff)); /* the other way out */
    return (void *)(uintptr_t)(h & 0xffff);
}

static void churn(void)
{
    pthread_t t[BATCH];
    uint64_t sum = 0, xor = 0;
    int created = 0;
    for (int b = 0; b < CHURN / BATCH; b++) {
        for (int j = 0; j < BATCH; j++) {
            int e = pthread_create(&t[j], NULL, short_lived, (void *)(uintptr_t)(b * BATCH + j));
            if (e)
                die("pthread_create", e);
            created++;
        }
        for (int j = 0; j < BATCH; j++) {
            void *r;
            int e = pthread_join(t[j], &r);
            if (e)
                die("pthread_join", e);
            sum += (uintptr_t)r;
            xor ^= (uintptr_t)r << (j % 48);
        }
    }
    printf("churn: %d threads created and joined, sum %llu, xor %#llx\n", created,
           (unsigned long long)sum, (unsigned long long)xor);
}

/* --- 64 at once ------------------------------------------------------- */

static pthread_barrier_t wide_barrier;
static pthread_mutex_t wide_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t wide_total;            /* under wide_lock */
static unsigned long wide_atomic;      /* __atomic adds */
static double wide_fp[WIDE];           /* combined in index order later */
static int wide_alive, wide_max_alive; /* under wide_lock */

static void *wide_worker(void *arg)
{
    int i = (int)(uintptr_t)arg;
    pthread_mutex_lock(&wide_lock);
    if (++wide_alive > wide_max_alive)
        wide_max_alive = wide_alive;
    pthread_mutex_unlock(&wide_lock);
    pthread_barrier_wait(&wide_barrier); /* all 64 exist at this point */

    uint64_t s = 0;
    double x = 0;
    for (int k = 1; k <= 20000; k++) {
        s += (uint64_t)(k ^ i) * (k % 7 + 1);
        x += 1.0 / ((double)k * k + i);
        if (k % 1000 == 0)
            __atomic_add_fetch(&wide_atomic, 1, __ATOMIC_SEQ_CST);
    }
    wide_fp[i] = x;
    pthread_mutex_lock(&wide_lock);
    wide_total += s;
    pthread_mutex_unlock(&wide_lock);

    pthread_barrier_wait(&wide_barrier); /* nobody leaves early */
    pthread_mutex_lock(&wide_lock);
    wide_alive--;
    pthread_mutex_unlock(&wide_lock);
    return (void *)(uintptr_t)(s % 1000003);
}

static void wide(void)
{
    pthread_t t[WIDE];
    pthread_barrier_init(&wide_barrier, NULL, WIDE);
    for (int i = 0; i < WIDE; i++) {
        int e = pthread_create(&t[i], NULL, wide_worker, (void *)(uintptr_t)i);
        if (e)
            die("pthread_create", e);
    }
    uint64_t rsum = 0;
    for (int i = 0; i < WIDE; i++) {
        void *r;
        pthread_join(t[i], &r);
        rsum += (uintptr_t)r;
    }
    double fp = 0;
    for (int i = 0; i < WIDE; i++)
        fp += wide_fp[i];
    printf("wide: %d alive at once, total %llu, atomic %lu, returns %llu, fp %.17g\n",
           wide_max_alive, (unsigned long long)wide_total, wide_atomic, (unsigned long long)rsum,
           fp);
    pthread_barrier_destroy(&wide_barrier);
}

/* --- detached threads ------------------------------------------------- */

static sem_t detached_done;
static unsigned long detached_sum;

static void *detached_worker(void *arg)
{
    unsigned long v = (uintptr_t)arg;
    __atomic_add_fetch(&detached_sum, v * v, __ATOMIC_SEQ_CST);
    if (v % 2)
        pthread_detach(pthread_self()); /* detach itself */
    sem_post(&detached_done);
    return NULL;
}

static void detached(void)
{
    sem_init(&detached_done, 0, 0);
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int n = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 40; i++) {
            pthread_t t;
            unsigned long v = round * 40 + i;
            int e;
            if (v % 2) /* joinable; detaches itself */
                e = pthread_create(&t, NULL, detached_worker, (void *)(uintptr_t)v);
            else
                e = pthread_create(&t, &a, detached_worker, (void *)(uintptr_t)v);
            if (e)
                die("pthread_create detached", e);
            n++;
        }
        for (int i = 0; i < 40; i++)
            while (sem_wait(&detached_done) != 0)
                ;
    }
    pthread_attr_destroy(&a);
    printf("detached: %d threads, sum of squares %lu\n", n, detached_sum);
}

/* --- stacks reused one thread after another --------------------------- */

static char user_stack[256 * 1024] __attribute__((aligned(4096)));

static void *on_user_stack(void *arg)
{
    volatile char local[2048];
    uintptr_t i = (uintptr_t)arg;
    int inside =
        (char *)&local[0] >= user_stack && (char *)&local[0] < user_stack + sizeof user_stack;
    /* whatever the previous thread left on this stack, this one starts over */
    for (int k = 0; k < 2048; k++)
        local[k] = (char)(k + i);
    unsigned s = 0;
    for (int k = 0; k < 2048; k++)
        s += (unsigned char)local[k];
    return (void *)(uintptr_t)(s * 2 + inside);
}

static void *where_am_i(void *arg)
{
    (void)arg;
    volatile int local = 0;
    return (void *)((uintptr_t)&local >> 12); /* the page, only compared */
}

static void stacks(void)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstack(&a, user_stack, sizeof user_stack);
    unsigned long sum = 0;
    int all_inside = 1;
    for (int i = 0; i < 100; i++) {
        pthread_t t;
        void *r;
        int e = pthread_create(&t, &a, on_user_stack, (void *)(uintptr_t)i);
        if (e)
            die("pthread_create on user stack", e);
        pthread_join(t, &r);
        all_inside &= (uintptr_t)r & 1;
        sum += (uintptr_t)r >> 1;
    }
    pthread_attr_destroy(&a);
    printf("user stack: 100 threads one after another, all on it %d, sum %lu\n", all_inside, sum);

    /* glibc caches the stack of a joined thread and hands it to the next
     * (no thread is exiting concurrently, so this is deterministic) */
    void *first, *p;
    pthread_t t;
    pthread_create(&t, NULL, where_am_i, NULL);
    pthread_join(t, &first);
    int same = 0;
    for (int i = 0; i < 20; i++) {
        pthread_create(&t, NULL, where_am_i, NULL);
        pthread_join(t, &p);
        same += p == first;
    }
    printf("glibc stack cache: %d of 20 later threads on the first one's stack\n", same);

    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int st;
    pthread_attr_getdetachstate(&a, &st);
    printf("detach state attribute reads back: %d\n", st == PTHREAD_CREATE_DETACHED);
    pthread_attr_destroy(&a);
}

int main(void)
{
    churn();
    wide();
    stacks(); /* before any detached thread could be exiting concurrently */
    detached();
    return 0;
}
