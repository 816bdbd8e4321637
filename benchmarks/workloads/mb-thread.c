/* mb-thread: thread creation and exit. Usage: mb-thread N (N threads, one
 * at a time: pthread_create then pthread_join). Each thread folds its index
 * into a value it returns; the checksum of those is printed. Under a
 * translator every round is a clone, a new thread's set-up and tear-down. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void *worker(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 16; i++)
        x ^= x >> 29, x *= 0xbf58476d1ce4e5b9ull;
    return (void *)(uintptr_t)x;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000;
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) {
        pthread_t t;
        void *ret;
        if (pthread_create(&t, NULL, worker, (void *)(uintptr_t)i) || pthread_join(t, &ret)) {
            fprintf(stderr, "mb-thread: thread %ld failed\n", i);
            return 1;
        }
        sum = sum * 31 + (uint64_t)(uintptr_t)ret;
    }
    printf("thread %ld created and joined, checksum %016llx\n", n, (unsigned long long)sum);
    return 0;
}
