/* Deep and heavy recursion: a translator must keep return addresses exact
 * (they are guest addresses on the guest stack) and should not blow up its
 * return-prediction structures when calls nest thousands deep. */
#include <stdint.h>
#include <stdio.h>

static unsigned long calls;

static unsigned long __attribute__((noinline)) ack(unsigned long m, unsigned long n)
{
    calls++;
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ack(m - 1, 1);
    return ack(m - 1, ack(m, n - 1));
}

static unsigned long __attribute__((noinline)) fib(unsigned n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static int __attribute__((noinline)) tak(int x, int y, int z)
{
    if (y >= x)
        return z;
    return tak(tak(x - 1, y, z), tak(y - 1, z, x), tak(z - 1, x, y));
}

static int is_odd(unsigned n);

static int __attribute__((noinline)) is_even(unsigned n)
{
    return n == 0 ? 1 : is_odd(n - 1);
}

static int __attribute__((noinline)) is_odd(unsigned n)
{
    return n == 0 ? 0 : is_even(n - 1);
}

/* Not a tail call: the addition happens after the return, and the volatile
 * local keeps a real frame on every level. */
static uint64_t __attribute__((noinline)) deep(unsigned n)
{
    volatile uint64_t local = n * 2654435761u;
    if (n == 0)
        return 0;
    return deep(n - 1) + (local & 0xffff);
}

static void __attribute__((noinline))
hanoi(int n, int from, int to, int via, unsigned long *moves, unsigned long *chk)
{
    if (n == 0)
        return;
    hanoi(n - 1, from, via, to, moves, chk);
    ++*moves;
    *chk = *chk * 3 + (unsigned long)(from * 4 + to);
    hanoi(n - 1, via, to, from, moves, chk);
}

/* Recursion through a function pointer, so the return is to a different
 * call site than a direct call. */
typedef unsigned long (*walker)(unsigned, int);
static unsigned long walk_a(unsigned, int);
static unsigned long walk_b(unsigned, int);
static volatile walker walkers[2] = {walk_a, walk_b};

static unsigned long __attribute__((noinline)) walk_a(unsigned n, int k)
{
    return n == 0 ? 1 : walkers[(n + k) & 1](n - 1, k + 1) * 3 % 1000003;
}

static unsigned long __attribute__((noinline)) walk_b(unsigned n, int k)
{
    return n == 0 ? 2 : walkers[(n * k) & 1](n - 1, k ^ 5) * 7 % 1000003 + 1;
}

int main(void)
{
    int status = 0;
    unsigned long a = ack(2, 500);
    printf("ack(2,500) = %lu\n", a);
    calls = 0;
    a = ack(3, 8);
    printf("ack(3,8) = %lu (%lu calls)\n", a, calls);
    if (a != 2045)
        status = 1;
    unsigned long f = fib(30);
    printf("fib(30) = %lu\n", f);
    if (f != 832040)
        status = 1;
    printf("tak(18,12,6) = %d\n", tak(18, 12, 6));
    printf("is_even(100001) = %d\n", is_even(100001));
    uint64_t d = deep(50000);
    printf("deep(50000) = %llu\n", (unsigned long long)d);
    unsigned long moves = 0, chk = 0;
    hanoi(18, 1, 3, 2, &moves, &chk);
    printf("hanoi(18) = %lu moves, chk %lu\n", moves, chk);
    if (moves != (1ul << 18) - 1)
        status = 1;
    printf("walk = %lu\n", walk_a(20000, 3));
    printf("%s\n", status ? "FAIL" : "ok");
    return status;
}
