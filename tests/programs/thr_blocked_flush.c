/* A thread blocked in a system call for the whole run while another runs
 * through more code than a small code cache holds, pass after pass: under
 * dbo with --cache-size, hundreds of flushes while the blocked thread is
 * still "in" the code it made the call from. Retired code must be freed
 * all the same (only the blocked thread's own code kept): keeping every
 * retired chunk ran out of places near the code to map new ones after
 * some 200 flushes. Then the blocked thread is woken, reads its message
 * and ends. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PASSES 400

static int pipe_fds[2];

static void *reader(void *arg)
{
    (void)arg;
    char buf[32] = {0};
    ssize_t n = read(pipe_fds[0], buf, sizeof buf - 1); /* blocks until main writes */
    printf("reader got %zd bytes: %s\n", n, buf);
    return NULL;
}

/* 1024 distinct functions, each a few branches: some 150 KB of
 * translated code, more than a 128K cache. */
#define BODY(n)                                                                                    \
    static __attribute__((noinline)) uint64_t f##n(uint64_t x)                                     \
    {                                                                                              \
        if (x & (1u << ((n) % 7)))                                                                 \
            x = x * 31 + (n);                                                                      \
        else                                                                                       \
            x ^= (uint64_t)(n) << 3;                                                               \
        if ((x >> 5) % 3 == (n) % 3)                                                               \
            x += x >> 7;                                                                           \
        return x + ((n) | 1);                                                                      \
    }
#define B4(n) BODY(n##0) BODY(n##1) BODY(n##2) BODY(n##3)
#define B16(n) B4(n##0) B4(n##1) B4(n##2) B4(n##3)
#define B64(n) B16(n##0) B16(n##1) B16(n##2) B16(n##3)
#define B256(n) B64(n##0) B64(n##1) B64(n##2) B64(n##3)
B256(1)
B256(2)
B256(3)
B256(4)

#define P4(n) f##n##0, f##n##1, f##n##2, f##n##3,
#define P16(n) P4(n##0) P4(n##1) P4(n##2) P4(n##3)
#define P64(n) P16(n##0) P16(n##1) P16(n##2) P16(n##3)
#define P256(n) P64(n##0) P64(n##1) P64(n##2) P64(n##3)
static uint64_t (*const functions[])(uint64_t) = {P256(1) P256(2) P256(3) P256(4)};

int main(void)
{
    if (pipe(pipe_fds) != 0)
        return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, reader, NULL) != 0)
        return 2;
    uint64_t x = 1;
    size_t n = sizeof functions / sizeof *functions;
    for (int pass = 0; pass < PASSES; pass++)
        for (size_t i = 0; i < n; i++)
            x = functions[i](x);
    printf("%zu functions, %d passes: %016llx\n", n, PASSES, (unsigned long long)x);
    fflush(stdout);
    const char *msg = "wake up";
    if (write(pipe_fds[1], msg, strlen(msg)) != (ssize_t)strlen(msg))
        return 3;
    pthread_join(t, NULL);
    return 0;
}
