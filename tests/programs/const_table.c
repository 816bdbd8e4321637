/* A computed goto through a table in read-only memory, its index a byte
 * (movzbl): dbo takes such a table as constant and jumps through its own
 * slots without checking the target (table_jump.c); also through a
 * relative table, as position-independent switches use. The program then
 * makes the table's page writable, changes an entry, makes it read-only
 * again and runs the same code: the new target must be taken. Non-PIE
 * builds load from the table's absolute address, PIE builds through a
 * register set by a lea just before. run_with(), in every build, takes
 * the table in a register set once, outside its handlers' code (dbo
 * checks that register at each jump), and is given two tables in turn. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* run_ops(code, acc): add 3, subtract 1, multiply by 5 or stop, one
 * opcode byte at a time; each handler ends in its own dispatch. */
uint64_t run_ops(const uint8_t *code, uint64_t acc);
extern uint64_t op_table[256];
extern char op_sub[], op_mul[];

#ifdef __PIE__
#define LOAD_TARGET "lea op_table(%rip), %rcx\n mov (%rcx,%rax,8), %rax\n"
#define TABLE_SECTION ".section .data.rel.ro\n"
#else
#define LOAD_TARGET "mov op_table(,%rax,8), %rax\n"
#define TABLE_SECTION ".section .rodata\n"
#endif
#define DISPATCH "movzbl (%rsi), %eax\n inc %rsi\n" LOAD_TARGET "jmp *%rax\n"

/* run_with(code, acc, table): the same handlers' work through the table
 * given (in %r8 throughout). */
uint64_t run_with(const uint8_t *code, uint64_t acc, const uint64_t *table);
extern uint64_t with_table[256], with_swapped[256];
#define DISPATCH_WITH "movzbl (%rsi), %eax\n inc %rsi\n mov (%r8,%rax,8), %rax\n jmp *%rax\n"
__asm__(".text\n"
        ".globl run_with\n"
        "run_with:\n"
        " mov %rdx, %r8\n"
        " mov %rsi, %rdx\n"
        " mov %rdi, %rsi\n" DISPATCH_WITH "with_add:\n"
        " add $3, %rdx\n" DISPATCH_WITH "with_sub:\n"
        " sub $1, %rdx\n" DISPATCH_WITH "with_mul:\n"
        " imul $5, %rdx, %rdx\n" DISPATCH_WITH "with_end:\n"
        " mov %rdx, %rax\n"
        " ret\n" TABLE_SECTION ".balign 4096\n"
        ".globl with_table\n"
        "with_table:\n"
        " .quad with_add, with_sub, with_mul\n"
        " .rept 253\n"
        " .quad with_end\n"
        " .endr\n"
        ".globl with_swapped\n"
        "with_swapped:\n"
        " .quad with_add, with_mul, with_sub\n"
        " .rept 253\n"
        " .quad with_end\n"
        " .endr\n"
        " .balign 4096\n"
        ".text\n");

__asm__(".text\n"
        ".globl run_ops\n"
        "run_ops:\n"
        " mov %rsi, %rdx\n"
        " mov %rdi, %rsi\n" DISPATCH "op_add:\n"
        " add $3, %rdx\n" DISPATCH ".globl op_sub\n"
        "op_sub:\n"
        " sub $1, %rdx\n" DISPATCH ".globl op_mul\n"
        "op_mul:\n"
        " imul $5, %rdx, %rdx\n" DISPATCH "op_end:\n"
        " mov %rdx, %rax\n"
        " ret\n" TABLE_SECTION ".balign 4096\n"
        ".globl op_table\n"
        "op_table:\n"
        " .quad op_add, op_sub, op_mul\n"
        " .rept 253\n"
        " .quad op_end\n"
        " .endr\n"
        " .balign 4096\n"
        ".text\n");

/* run_rel(code, acc): run_ops through a relative table (a switch's in
 * position-independent code: 4-byte entries, the table's address plus
 * the entry), in .rodata in every build. */
uint64_t run_rel(const void *code, uint64_t acc);
extern int32_t rel_table[256];
extern char rel_sub[], rel_mul[];
#define DISPATCH_REL                                                                               \
    "movzbl (%rsi), %eax\n inc %rsi\n lea rel_table(%rip), %rcx\n"                                 \
    " movslq (%rcx,%rax,4), %rax\n add %rcx, %rax\n jmp *%rax\n"
__asm__(".text\n"
        ".globl run_rel\n"
        "run_rel:\n"
        " mov %rsi, %rdx\n"
        " mov %rdi, %rsi\n" DISPATCH_REL "rel_add:\n"
        " add $3, %rdx\n" DISPATCH_REL ".globl rel_sub\n"
        "rel_sub:\n"
        " sub $1, %rdx\n" DISPATCH_REL ".globl rel_mul\n"
        "rel_mul:\n"
        " imul $5, %rdx, %rdx\n" DISPATCH_REL "rel_end:\n"
        " mov %rdx, %rax\n"
        " ret\n"
        ".section .rodata\n"
        ".balign 4096\n"
        ".globl rel_table\n"
        "rel_table:\n"
        " .long rel_add - rel_table, rel_sub - rel_table, rel_mul - rel_table\n"
        " .rept 253\n"
        " .long rel_end - rel_table\n"
        " .endr\n"
        " .balign 4096\n"
        ".text\n");

/* run_sw(codes, acc): a switch's dispatch, the index bounded by a compare
 * (`cmp $3; ja`) rather than by its type, through a relative table. */
uint64_t run_sw(const void *codes, uint64_t acc);
extern int32_t sw_table[4];
extern char sw_mul[];
#define DISPATCH_SW                                                                                \
    "movzwl (%rsi), %eax\n add $2, %rsi\n cmp $3, %eax\n ja sw_end\n"                              \
    " lea sw_table(%rip), %rcx\n movslq (%rcx,%rax,4), %rax\n add %rcx, %rax\n jmp *%rax\n"
/* run_wide(codes, acc): the same with a compare that bounds nothing
 * (`cmp $1; jb`: the index goes on past 255, where the table's entries
 * differ from those 256 below). */
uint64_t run_wide(const void *codes, uint64_t acc);
#define DISPATCH_WIDE                                                                              \
    "movzwl (%rsi), %eax\n add $2, %rsi\n cmp $1, %eax\n jb wide_end\n"                            \
    " lea wide_table(%rip), %rcx\n movslq (%rcx,%rax,4), %rax\n add %rcx, %rax\n jmp *%rax\n"
__asm__(".text\n"
        ".globl run_sw\n"
        "run_sw:\n"
        " mov %rsi, %rdx\n"
        " mov %rdi, %rsi\n" DISPATCH_SW "sw_add:\n"
        " add $3, %rdx\n" DISPATCH_SW "sw_sub:\n"
        " sub $1, %rdx\n" DISPATCH_SW ".globl sw_mul\n"
        "sw_mul:\n"
        " imul $5, %rdx, %rdx\n" DISPATCH_SW "sw_rot:\n"
        " rol $7, %rdx\n" DISPATCH_SW "sw_end:\n"
        " mov %rdx, %rax\n"
        " ret\n"
        ".globl run_wide\n"
        "run_wide:\n"
        " mov %rsi, %rdx\n"
        " mov %rdi, %rsi\n" DISPATCH_WIDE "wide_add:\n"
        " add $3, %rdx\n" DISPATCH_WIDE "wide_mul:\n"
        " imul $5, %rdx, %rdx\n" DISPATCH_WIDE "wide_end:\n"
        " mov %rdx, %rax\n"
        " ret\n"
        ".section .rodata\n"
        ".balign 4096\n"
        ".globl sw_table\n"
        "sw_table:\n"
        " .long sw_add - sw_table, sw_sub - sw_table, sw_mul - sw_table, sw_rot - sw_table\n"
        "wide_table:\n"
        " .rept 256\n"
        " .long wide_add - wide_table\n"
        " .endr\n"
        " .rept 256\n"
        " .long wide_mul - wide_table\n"
        " .endr\n"
        " .balign 4096\n"
        ".text\n");

/* call_each(n, x): n calls through call_table, the index x's low two
 * bits (and $3), non-PIE by absolute address, PIE through a lea'd base. */
uint64_t call_each(uint64_t n, uint64_t x);
extern uint64_t call_table[4];
extern char fn_mul[];
#ifdef __PIE__
#define CALL_THROUGH "lea call_table(%rip), %r10\n call *(%r10,%rax,8)\n"
#else
#define CALL_THROUGH "call *call_table(,%rax,8)\n"
#endif
__asm__(".text\n"
        ".globl call_each\n"
        "call_each:\n"
        " push %rbx\n"
        " mov %rdi, %rbx\n"
        " mov %rsi, %rdx\n"
        "2: mov %edx, %eax\n"
        " and $3, %eax\n" CALL_THROUGH " dec %rbx\n"
        " jnz 2b\n"
        " mov %rdx, %rax\n"
        " pop %rbx\n"
        " ret\n"
        "fn_add: lea 7(%rdx), %rdx\n ret\n"
        "fn_sub: lea -3(%rdx), %rdx\n ret\n"
        ".globl fn_mul\n"
        "fn_mul: imul $5, %rdx, %rdx\n ret\n"
        "fn_rot: rol $3, %rdx\n ret\n" TABLE_SECTION ".balign 4096\n"
        ".globl call_table\n"
        "call_table: .quad fn_add, fn_sub, fn_mul, fn_rot\n"
        " .balign 4096\n"
        ".text\n");

/* 20000 runs of run(codes, acc), each from the last one's result. */
static uint64_t repeat(uint64_t (*run)(const void *, uint64_t), const void *codes)
{
    uint64_t acc = 7;
    for (int i = 0; i < 20000; i++)
        acc = run(codes, acc) & 0xffffffff;
    return acc;
}

/* Entry `index` of a relative table in read-only memory now leads to
 * `target`: the page made writable, changed, made read-only again. */
static void retarget(int32_t *table, int index, const void *target)
{
    long page = sysconf(_SC_PAGESIZE);
    void *at = (void *)((uintptr_t)table & ~(uintptr_t)(page - 1));
    mprotect(at, page, PROT_READ | PROT_WRITE);
    table[index] = (int32_t)((intptr_t)target - (intptr_t)table);
    mprotect(at, page, PROT_READ);
}

int main(void)
{
    static const uint8_t code[] = {0, 1, 2, 0, 1, 1, 2, 0, 0, 2, 1, 255};
    uint64_t acc = 7;
    for (int i = 0; i < 20000; i++)
        acc = run_ops(code, acc) & 0xffffffff;
    printf("before: %llu\n", (unsigned long long)acc);

    /* opcode 1 now multiplies */
    long page = sysconf(_SC_PAGESIZE);
    void *at = (void *)((uintptr_t)op_table & ~(uintptr_t)(page - 1));
    if (mprotect(at, page, PROT_READ | PROT_WRITE)) {
        perror("mprotect");
        return 1;
    }
    op_table[1] = (uint64_t)op_mul;
    if (mprotect(at, page, PROT_READ)) {
        perror("mprotect");
        return 1;
    }
    acc = 7;
    for (int i = 0; i < 20000; i++)
        acc = run_ops(code, acc) & 0xffffffff;
    printf("after: %llu\n", (unsigned long long)acc);

    /* and back */
    mprotect(at, page, PROT_READ | PROT_WRITE);
    op_table[1] = (uint64_t)op_sub;
    mprotect(at, page, PROT_READ);
    acc = 7;
    for (int i = 0; i < 20000; i++)
        acc = run_ops(code, acc) & 0xffffffff;
    printf("again: %llu\n", (unsigned long long)acc);

    /* the same through the relative table, before and after */
    printf("relative: %llu\n", (unsigned long long)repeat(run_rel, code));
    retarget(rel_table, 1, rel_mul);
    printf("relative after: %llu\n", (unsigned long long)repeat(run_rel, code));

    /* a switch bounded by a compare, its table then changed */
    static const uint16_t sw_codes[] = {0, 1, 2, 3, 0, 1, 1, 2, 3, 0, 2, 9};
    printf("switch: %llu\n", (unsigned long long)repeat(run_sw, sw_codes));
    retarget(sw_table, 1, sw_mul);
    printf("switch after: %llu\n", (unsigned long long)repeat(run_sw, sw_codes));
    /* indexes 256 apart, which share a low byte, go different ways */
    static const uint16_t wide_codes[] = {1, 257, 2, 258, 300, 44, 1, 0};
    printf("wide: %llu\n", (unsigned long long)repeat(run_wide, wide_codes));

    uint64_t a = 7, b = 7;
    for (int i = 0; i < 20000; i++) {
        a = run_with(code, a, with_table) & 0xffffffff;
        b = run_with(code, b, with_swapped) & 0xffffffff;
    }
    printf("with a table in a register: %llu, swapped: %llu\n", (unsigned long long)a,
           (unsigned long long)b);

    /* calls through a constant table; then entry 1 changed */
    printf("calls: %llu\n", (unsigned long long)call_each(100000, 12345));
    void *calls = (void *)((uintptr_t)call_table & ~(uintptr_t)(page - 1));
    mprotect(calls, page, PROT_READ | PROT_WRITE);
    call_table[1] = (uint64_t)fn_mul;
    mprotect(calls, page, PROT_READ);
    printf("calls after: %llu\n", (unsigned long long)call_each(100000, 12345));
    return 0;
}
