/* Indirect control flow: calls through tables of function pointers,
 * indirect tail calls (jmp *), callbacks, variadic calls, and a
 * computed-goto interpreter. Every indirect branch target must be looked
 * up at run time by a translator. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

typedef uint64_t (*op_fn)(uint64_t, uint64_t);

#define OP(name, expr)                                                                             \
    static uint64_t __attribute__((noinline)) name(uint64_t a, uint64_t b)                         \
    {                                                                                              \
        return expr;                                                                               \
    }
// clang-format off
OP(op_add, a + b)
OP(op_sub, a - b)
OP(op_mul, a * b)
OP(op_xor, a ^ b)
OP(op_rotl, a << (b & 31) | a >> (64 - (b & 31) - 1) >> 1)
OP(op_min, a < b ? a : b)
OP(op_max, a > b ? a : b)
OP(op_mix, (a ^ (a >> 29)) * 0xbf58476d1ce4e5b9ULL + b)
// clang-format on

static op_fn const table[8] = {op_add, op_sub, op_mul, op_xor, op_rotl, op_min, op_max, op_mix};

/* Indirect sibling call: compiled to jmp *table(,%rax,8). */
static uint64_t __attribute__((noinline)) dispatch(unsigned i, uint64_t a, uint64_t b)
{
    return table[i & 7](a, b);
}

struct shape;
struct shape_ops {
    const char *name;
    long (*area)(const struct shape *);
    long (*perimeter)(const struct shape *);
};
struct shape {
    const struct shape_ops *ops;
    long w, h;
};
static long rect_area(const struct shape *s)
{
    return s->w * s->h;
}
static long rect_per(const struct shape *s)
{
    return 2 * (s->w + s->h);
}
static long tri_area(const struct shape *s)
{
    return s->w * s->h / 2;
}
static long tri_per(const struct shape *s)
{
    return s->w + s->h + (s->w > s->h ? s->w : s->h);
}
static const struct shape_ops rect_ops = {"rect", rect_area, rect_per};
static const struct shape_ops tri_ops = {"tri", tri_area, tri_per};

static void for_each(const int *v, int n, void (*cb)(int, void *), void *ctx)
{
    for (int i = 0; i < n; i++)
        cb(v[i], ctx);
}
static void cb_sum(int x, void *ctx)
{
    *(long *)ctx += x;
}
static void cb_sq(int x, void *ctx)
{
    *(long *)ctx += (long)x * x;
}

/* Variadic with doubles: %al carries the number of vector registers. */
static double __attribute__((noinline)) vsum(int n, ...)
{
    va_list ap;
    double s = 0;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        if (i % 2)
            s += va_arg(ap, double);
        else
            s += va_arg(ap, int);
    }
    va_end(ap);
    return s;
}

static op_fn __attribute__((noinline)) pick(int k)
{
    return table[(k * 5 + 3) & 7];
}

/* A tiny stack machine using labels-as-values (indirect jmp per opcode). */
enum { PUSH, ADD, MUL, DUP, SWAP, ROT, DEC, JNZ, POP, HALT };
static long run(const long *code)
{
    static void *const labels[] = {&&push, &&add, &&mul, &&dup, &&swap,
                                   &&rot,  &&dec, &&jnz, &&pop, &&halt};
    long stack[64], t;
    int sp = 0;
    const long *pc = code;
#define NEXT goto *labels[*pc++]
    NEXT;
push:
    stack[sp++] = *pc++;
    NEXT;
add:
    sp--;
    stack[sp - 1] += stack[sp];
    NEXT;
mul:
    sp--;
    stack[sp - 1] = stack[sp - 1] * stack[sp] % 1000000007;
    NEXT;
dup:
    stack[sp] = stack[sp - 1];
    sp++;
    NEXT;
swap:
    t = stack[sp - 1];
    stack[sp - 1] = stack[sp - 2];
    stack[sp - 2] = t;
    NEXT;
rot: /* a b c -> b c a */
    t = stack[sp - 3];
    stack[sp - 3] = stack[sp - 2];
    stack[sp - 2] = stack[sp - 1];
    stack[sp - 1] = t;
    NEXT;
dec:
    stack[sp - 1]--;
    NEXT;
jnz: /* jumps if top of stack is nonzero; does not pop */
    if (stack[sp - 1] != 0)
        pc = code + *pc;
    else
        pc++;
    NEXT;
pop:
    sp--;
    NEXT;
halt:
    return stack[sp - 1];
#undef NEXT
}

int main(void)
{
    uint64_t x = 0x0123456789abcdefULL, acc = 0;
    unsigned seed = 12345;
    for (int i = 0; i < 2000000; i++) {
        seed = seed * 1103515245u + 12345u;
        x = dispatch(seed >> 16, x, seed);
        acc += x;
    }
    printf("dispatch: %016llx %016llx\n", (unsigned long long)x, (unsigned long long)acc);

    uint64_t y = 1;
    for (int k = 0; k < 1000; k++)
        y = pick(k)(y, (uint64_t)k + 1);
    printf("pick: %016llx\n", (unsigned long long)y);

    struct shape shapes[] = {{&rect_ops, 3, 4}, {&tri_ops, 6, 5}, {&rect_ops, 10, 2}};
    for (size_t i = 0; i < 3; i++)
        printf("%s: area %ld perimeter %ld\n", shapes[i].ops->name, shapes[i].ops->area(&shapes[i]),
               shapes[i].ops->perimeter(&shapes[i]));

    int v[100];
    for (int i = 0; i < 100; i++)
        v[i] = i * 7 - 300;
    long s1 = 0, s2 = 0;
    for_each(v, 100, cb_sum, &s1);
    for_each(v, 100, cb_sq, &s2);
    printf("callbacks: %ld %ld\n", s1, s2);

    printf("vsum: %.3f\n", vsum(6, 1, 2.5, 3, 4.25, 5, 6.125));

    /* sum of i*i (mod p per square) for i = 100000..1; stack: acc cnt */
    // clang-format off
    const long prog[] = {PUSH, 0, PUSH, 100000,
                         /* 4: */ DUP, DUP, MUL, /* acc cnt sq */
                         ROT, ADD, SWAP,       /* acc' cnt */
                         DEC, JNZ, 4, POP, HALT};
    // clang-format on
    long expect = 0, got = run(prog);
    for (long i = 1; i <= 100000; i++)
        expect += i * i % 1000000007;
    printf("interp: %ld %s\n", got, got == expect ? "ok" : "FAIL");
    return got == expect ? 0 : 1;
}
