/* cpuid, answered from memory. In a virtual machine every cpuid traps to
 * the hypervisor: 4-5 us each here, where a whole native /bin/true takes
 * 0.45 ms, and a glibc program's start executes 43 of them (ld.so's
 * feature and cache detection; handle_amd() asks the same leaves again
 * and again). Under dbo a start pays that twice: dbo's own ld.so, then
 * the guest's. So a guest `cpuid` ends its fragment (EXIT_CPUID) and the
 * dispatcher answers it from a process-wide memo of (leaf, subleaf) ->
 * registers, asking the CPU only for a pair it has not seen, and not
 * even then for the leaves dbo's own glibc asked and kept (from_glibc()).
 *
 * A few leaves describe the CPU the thread happens to run on (its APIC
 * ids): those answers are kept per CPU, taken only when the thread was on
 * the same CPU before and after asking, so a program that pins a thread
 * to each CPU and reads their ids sees what it would natively. */
#include <cpuid.h>
#include <sched.h>
#include <sys/platform/x86.h>

#include "runtime/runtime.h"
#include "translator/translator.h"

struct cpuid_answer {
    uint32_t leaf, subleaf;
    int32_t cpu;      /* -1: the same on every CPU */
    uint32_t regs[4]; /* eax, ebx, ecx, edx */
};

/* A start asks some 20 different pairs; past this many, ask the CPU. */
#define CPUID_MEMO_SIZE 256
static struct cpuid_answer memo[CPUID_MEMO_SIZE];
static int memo_used;

/* Leaves whose answer names the current CPU: 1 (initial APIC id in
 * ebx[31:24]), 0xb and 0x1f (x2APIC id in edx), 0x8000001e (AMD's
 * extended APIC, core and node ids). */
static bool per_cpu(uint32_t leaf)
{
    return leaf == 1 || leaf == 0xb || leaf == 0x1f || leaf == 0x8000001e;
}

/* Leaves whose answer does not depend on ecx: the subleaf is 0 in the
 * memo. glibc asks several with whatever ecx holds (its handle_amd() asks
 * 0x80000000 ten times at start, ecx different each time: ten traps). */
static bool ignores_subleaf(uint32_t leaf)
{
    return leaf <= 3 || leaf == 5 || leaf == 6 || (leaf >= 0x80000000 && leaf <= 0x80000008);
}

static void remember(uint32_t leaf, uint32_t subleaf, int cpu, const uint32_t regs[4])
{
    if (memo_used == CPUID_MEMO_SIZE)
        return;
    struct cpuid_answer *a = &memo[memo_used++];
    *a = (struct cpuid_answer){.leaf = leaf, .subleaf = subleaf, .cpu = cpu};
    for (int i = 0; i < 4; i++)
        a->regs[i] = regs[i];
}

static const struct cpuid_answer *find(uint32_t leaf, uint32_t subleaf, int cpu)
{
    for (int i = 0; i < memo_used; i++)
        if (memo[i].leaf == leaf && memo[i].subleaf == subleaf && memo[i].cpu == cpu)
            return &memo[i];
    return NULL;
}

/* The leaves dbo's own glibc asked the CPU for as it started and keeps
 * as they came (<sys/platform/x86.h>: cpuid_array, the raw registers;
 * what glibc makes of them is its active_array): a guest's glibc asks the
 * same ones. Not leaf 1, which names the CPU that answered. */
static const struct {
    uint32_t leaf, subleaf, index;
} glibc_leaves[] = {
    {7, 0, CPUID_INDEX_7},
    {7, 1, CPUID_INDEX_7_ECX_1},
    {0xd, 1, CPUID_INDEX_D_ECX_1},
    {0x14, 0, CPUID_INDEX_14_ECX_0},
    {0x19, 0, CPUID_INDEX_19},
    {0x80000001, 0, CPUID_INDEX_80000001},
    {0x80000007, 0, CPUID_INDEX_80000007},
    {0x80000008, 0, CPUID_INDEX_80000008},
};

/* What glibc kept of (leaf, subleaf), if it asked: only for a leaf the
 * CPU has (glibc left the others zero), which the memo's leaf 0 or
 * 0x80000000 says; a guest asks those first. */
static bool from_glibc(uint32_t leaf, uint32_t subleaf, uint32_t regs[4])
{
    const struct cpuid_answer *max = find(leaf & 0x80000000, 0, -1);
    if (!max || leaf > max->regs[0])
        return false;
    for (size_t i = 0; i < sizeof glibc_leaves / sizeof *glibc_leaves; i++) {
        if (glibc_leaves[i].leaf != leaf || glibc_leaves[i].subleaf != subleaf)
            continue;
        const struct cpuid_feature *f = __x86_get_cpuid_feature_leaf(glibc_leaves[i].index);
        for (int r = 0; r < 4; r++)
            regs[r] = f->cpuid_array[r];
        return true;
    }
    return false;
}

void cpuid_answer(uint32_t leaf, uint32_t subleaf, uint32_t regs[4])
{
    if (ignores_subleaf(leaf))
        subleaf = 0;
    int cpu = per_cpu(leaf) ? sched_getcpu() : -1;
    /* (sched_getcpu() fails only without getcpu: then ask every time) */
    bool keep = !per_cpu(leaf) || cpu >= 0;
    const struct cpuid_answer *known = keep ? find(leaf, subleaf, cpu) : NULL;
    if (known) {
        for (int i = 0; i < 4; i++)
            regs[i] = known->regs[i];
        return;
    }
    if (keep && from_glibc(leaf, subleaf, regs)) {
        remember(leaf, subleaf, cpu, regs);
        return;
    }
    dbo_stats.cpuid_executed++;
    __cpuid_count(leaf, subleaf, regs[0], regs[1], regs[2], regs[3]);
    if (per_cpu(leaf) && sched_getcpu() != cpu)
        keep = false; /* moved meanwhile: which CPU answered? */
    if (keep)
        remember(leaf, subleaf, cpu, regs);
}

void cpuid_emulate(struct guest_context *ctx)
{
    uint32_t regs[4];
    dbo_stats.cpuid_asked++;
    cpuid_answer((uint32_t)ctx->gpr[GPR_RAX], (uint32_t)ctx->gpr[GPR_RCX], regs);
    /* like the instruction: 32-bit results, zero-extended */
    ctx->gpr[GPR_RAX] = regs[0];
    ctx->gpr[GPR_RBX] = regs[1];
    ctx->gpr[GPR_RCX] = regs[2];
    ctx->gpr[GPR_RDX] = regs[3];
}
