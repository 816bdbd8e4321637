/* Flags liveness (see optimizer.h): whether the guest's status flags
 * (CF, PF, AF, ZF, SF, OF) are dead where a piece of code starts, so that
 * code dbo puts there may use add/cmp rather than the flag-free
 * lea/jrcxz sequences and their spills. The guest code is followed from
 * that address, through direct jumps and calls and both ways of a
 * conditional branch, until every status flag has been written without
 * being read first (dead). It is live if something reads a flag not yet
 * written, or where the way on is not known: an indirect branch, a
 * return, a system call, an instruction Zydis does not know, memory that
 * is not executable or keeps changing, or after FLAGS_LOOKAHEAD
 * instructions. Zydis reports what each instruction tests, modifies, sets,
 * clears and leaves undefined; a flag the architecture leaves undefined
 * may be clobbered, as the guest cannot rely on it. */
#include "optimizer/optimizer.h"

#include <Zydis/Zydis.h>

#include "cache/cache.h"
#include "runtime/runtime.h"
#include "syscall/syscall.h"

#define FLAGS_LOOKAHEAD 16

#define STATUS_FLAGS                                                                               \
    (ZYDIS_CPUFLAG_CF | ZYDIS_CPUFLAG_PF | ZYDIS_CPUFLAG_AF | ZYDIS_CPUFLAG_ZF |                   \
     ZYDIS_CPUFLAG_SF | ZYDIS_CPUFLAG_OF)

/* Whether the status flags in `unwritten` are written before they are
 * read on every way on from pc, looking at *budget more instructions at
 * most. A conditional branch whose own flags are written already is
 * followed both ways. */
static bool dead_from(uint64_t pc, uint32_t unwritten, int *budget)
{
    static ZydisDecoder decoder;
    static bool ready;
    if (!ready) {
        ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
        ready = true;
    }
    while ((*budget)-- > 0) {
        uint64_t avail = guest_vm_exec_extent(pc);
        if (avail == 0 || cache_page_volatile(pc))
            return false;
        ZydisDecodedInstruction insn;
        ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
        if (ZYAN_FAILED(ZydisDecoderDecodeFull(&decoder, (const void *)pc, avail < 15 ? avail : 15,
                                               &insn, ops)))
            return false;
        const ZydisAccessedFlags *f = insn.cpu_flags;
        if (f && (f->tested & unwritten))
            return false;
        if (f)
            unwritten &= ~(f->modified | f->set_0 | f->set_1 | f->undefined);
        if (!unwritten)
            return true;
        uint64_t target = 0;
        bool direct = ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
                      insn.meta.branch_type != ZYDIS_BRANCH_TYPE_FAR &&
                      ZYAN_SUCCESS(ZydisCalcAbsoluteAddress(&insn, &ops[0], pc, &target));
        switch (insn.meta.category) {
        case ZYDIS_CATEGORY_UNCOND_BR:
        case ZYDIS_CATEGORY_CALL: /* a call's push leaves the flags alone */
            if (!direct)
                return false;
            pc = target;
            continue;
        case ZYDIS_CATEGORY_COND_BR: /* (jrcxz and loop test rcx) */
            if (!direct || !dead_from(target, unwritten, budget))
                return false;
            break;
        case ZYDIS_CATEGORY_RET:
        case ZYDIS_CATEGORY_SYSCALL:
        case ZYDIS_CATEGORY_SYSTEM:
        case ZYDIS_CATEGORY_INTERRUPT: return false;
        default: break;
        }
        pc += insn.length;
    }
    return false;
}

bool optimizer_flags_dead_at(uint64_t guest_pc)
{
    if (!dbo_opts.flags_liveness)
        return false;
    dbo_stats.flags_checked++;
    int budget = FLAGS_LOOKAHEAD;
    bool dead = dead_from(guest_pc, STATUS_FLAGS, &budget);
    dbo_stats.flags_dead += dead;
    return dead;
}
