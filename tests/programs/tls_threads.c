/* Thread-local storage in many threads: initialised and zeroed __thread
 * variables of every access model, a 64 KiB static TLS array, TLS seen
 * from a signal handler running in a thread, pthread keys with
 * destructors, and dynamic TLS of a dlopen'ed library (libstdc++'s
 * exception globals; skipped in static builds). Every thread must get a
 * fresh copy of the initial image however the main thread changed its own. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define THREADS 32
#define ROUNDS 3

__thread char big[65536];
__thread int counter = 1000;
__thread char label[32] = "initial label";
__thread uint64_t zeroes[128];
static __thread struct {
    short s;
    double d;
    char c[3];
} agg = {-5, 0.125, "ab"};
__thread int gd __attribute__((tls_model("global-dynamic"))) = 11;
static __thread int ld __attribute__((tls_model("local-dynamic"))) = 22;
__thread int ie __attribute__((tls_model("initial-exec"))) = 33;
static __thread int le __attribute__((tls_model("local-exec"))) = 44;
static __thread volatile int in_handler;

static pthread_key_t key;
static unsigned long destructed;
static void key_destructor(void *v)
{
    __atomic_add_fetch(&destructed, (uintptr_t)v, __ATOMIC_RELAXED);
}

static void on_usr1(int sig)
{
    (void)sig;
    in_handler = counter + 1; /* this thread's counter */
}

struct report {
    int fresh;         /* saw the initial image */
    uint64_t checksum; /* of its big array after writing it */
    uintptr_t big_addr, counter_addr;
    int handler_ok;
};

static pthread_barrier_t barrier;

static void *worker(void *arg)
{
    int id = (int)(uintptr_t)arg;
    struct report *r = calloc(1, sizeof *r);
    int z = 1;
    for (int i = 0; i < 128; i++)
        z &= zeroes[i] == 0;
    for (int i = 0; i < 65536; i++)
        z &= big[i] == 0;
    r->fresh = z && counter == 1000 && !strcmp(label, "initial label") && agg.s == -5 &&
               agg.d == 0.125 && !strcmp(agg.c, "ab") && gd == 11 && ld == 22 && ie == 33 &&
               le == 44;
    r->big_addr = (uintptr_t)big;
    r->counter_addr = (uintptr_t)&counter;

    /* everyone writes their own copy at the same time */
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < 65536; i++)
        big[i] = (char)(i * (id + 1));
    for (int k = 0; k < 1000; k++) {
        counter += id;
        zeroes[k & 127] += k ^ id;
        gd += ld;
        ie ^= le + k;
    }
    snprintf(label, sizeof label, "thread %d", id);
    pthread_barrier_wait(&barrier);
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 65536; i++)
        h = (h ^ (unsigned char)big[i]) * 1099511628211ULL;
    for (int i = 0; i < 128; i++)
        h ^= zeroes[i] << (i % 17);
    h += (uint64_t)counter * 31 + gd + ie + (unsigned char)label[7];
    r->checksum = h;

    /* a signal to this thread sees this thread's TLS */
    pthread_kill(pthread_self(), SIGUSR1);
    r->handler_ok = in_handler == counter + 1;
    pthread_setspecific(key, (void *)(uintptr_t)(id + 1));
    return r;
}

/* dynamic TLS: libstdc++'s per-thread exception globals */
static void *(*get_globals)(void);
static int has_interp(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_INTERP)
            *(int *)data = 1;
    return 1;
}
static void *dyn_worker(void *arg)
{
    (void)arg;
    struct {
        void *caught;
        unsigned int uncaught;
    } *g = get_globals(), *again = get_globals();
    int ok = g && g == again && g->caught == NULL && g->uncaught == 0;
    g->uncaught = 0; /* it is ours; leave it as found */
    return (void *)(uintptr_t)((uintptr_t)g | ok);
}
static void dynamic_tls(void)
{
    int dynamic = 0;
    dl_iterate_phdr(has_interp, &dynamic);
    if (!dynamic) {
        printf("dlopen'ed TLS: static build, skipped\n");
        return;
    }
    void *h = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_LOCAL);
    get_globals = h ? (void *(*)(void))dlsym(h, "__cxa_get_globals") : NULL;
    if (!get_globals) {
        printf("dlopen'ed TLS: libstdc++ not available, skipped\n");
        return;
    }
    pthread_t t[8];
    uintptr_t got[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, dyn_worker, NULL);
    int ok = 1, differs = 1;
    uintptr_t mine = (uintptr_t)get_globals(); /* alive all along */
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        got[i] = (uintptr_t)r;
        ok &= got[i] & 1;
        differs &= (got[i] & ~(uintptr_t)1) != mine;
    }
    printf("dlopen'ed TLS: 8 threads, each a fresh block %d, none the main thread's %d\n", ok,
           differs);
}

int main(void)
{
    /* the main thread changes its own copies first */
    counter = -1;
    strcpy(label, "main's");
    memset(big, 0x5a, sizeof big);
    agg.s = 99;
    gd = ld = ie = le = 0;
    signal(SIGUSR1, on_usr1);
    pthread_key_create(&key, key_destructor);
    pthread_barrier_init(&barrier, NULL, THREADS);

    uint64_t sum = 0;
    int all_fresh = 1, handlers = 1, distinct = 1;
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t t[THREADS];
        struct report *r[THREADS];
        for (int i = 0; i < THREADS; i++)
            if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0)
                return 1;
        for (int i = 0; i < THREADS; i++) {
            void *p;
            pthread_join(t[i], &p);
            r[i] = p;
            all_fresh &= r[i]->fresh;
            handlers &= r[i]->handler_ok;
            sum += r[i]->checksum * (round + 1);
        }
        for (int i = 0; i < THREADS; i++) {
            distinct &=
                r[i]->big_addr != (uintptr_t)big && r[i]->counter_addr != (uintptr_t)&counter;
            for (int j = 0; j < i; j++)
                distinct &= r[i]->big_addr != r[j]->big_addr;
        }
        for (int i = 0; i < THREADS; i++)
            free(r[i]);
    }
    printf("%d threads x %d rounds: all started from the initial image %d, addresses distinct %d\n",
           THREADS, ROUNDS, all_fresh, distinct);
    printf("checksum %016llx, handlers saw their thread's TLS %d, key destructors %lu\n",
           (unsigned long long)sum, handlers, destructed);
    int z = 1;
    for (int i = 0; i < 65536; i++)
        z &= big[i] == 0x5a;
    printf("main's copies untouched: %d %d \"%s\" %d\n", z, counter, label, agg.s);
    dynamic_tls();
    return 0;
}
