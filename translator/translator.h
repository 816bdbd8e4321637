/* Translator: decoding guest code into fragments, the per-thread context that
 * translated code reaches through %gs, the context switch and the dispatcher. */
#ifndef DBO_TRANSLATOR_H
#define DBO_TRANSLATOR_H

/* Offsets into struct guest_context, shared with the assembly in
 * context_switch.S and with the code the emitter writes (as %gs:OFFSET). */
#define CTX_SELF 0x00
#define CTX_SPILL_RCX 0x08
#define CTX_SPILL_RDX 0x10
#define CTX_JUMP_TARGET 0x18
#define CTX_IND_TARGET 0x20
#define CTX_EXIT_ENTRY 0x28
#define CTX_HOST_RSP 0x30
#define CTX_HOST_FS 0x38
#define CTX_GUEST_FS 0x40
#define CTX_EXIT_RECORD 0x48
#define CTX_XSAVE_MASK 0x50
#define CTX_USE_FSGSBASE 0x58
#define CTX_PENDING_SIGS 0x60
#define CTX_RFLAGS 0x68
#define CTX_RIP 0x70
#define CTX_IND_HITS 0x78
#define CTX_GPR 0x80      /* 16 registers in encoding order */
#define CTX_SIGINFO 0x100 /* last host siginfo per signal: 64 x 128 bytes */
#define CTX_XSAVE 0x2100
#define CTX_XSAVE_SIZE 0x2e00
#define CTX_THREAD_STATE 0x4f00                 /* per-thread fields, mostly C-only */
#define CTX_SIGNAL_FS CTX_THREAD_STATE          /* %fs base when a host signal arrived */
#define CTX_GUEST_GS (CTX_THREAD_STATE + 8)     /* the guest's virtual %gs base */
#define CTX_SIGMASK (CTX_THREAD_STATE + 16)     /* the guest's signal mask */
#define CTX_INLINE_HITS (CTX_THREAD_STATE + 24) /* inline target hits (--stats) */
/* The syscall gate's fast path (syscall/fast_gate.S): its address, where it
 * returns to in the cache, the call's number, and how many it made. */
#define CTX_SYSCALL_ENTRY (CTX_THREAD_STATE + 32)
#define CTX_SYSCALL_RETURN (CTX_THREAD_STATE + 40)
#define CTX_SYSCALL_NR (CTX_THREAD_STATE + 48)
#define CTX_FAST_SYSCALLS (CTX_THREAD_STATE + 56)
#define CTX_SYSCALL_CHECK (CTX_THREAD_STATE + 64) /* the same, number not known */
/* The return stack (translator/return_stack.S): real call/ret on a stack
 * of the runtime's, so the host's return predictor sees the guest's calls.
 * Its %rsp while the guest's is parked, the guest's %rsp meanwhile, the
 * empty stack's %rsp, and the routine that finds a return's target when
 * the return stack has no (right) entry for it. */
#define CTX_RETURN_SP (CTX_THREAD_STATE + 72)
#define CTX_PARKED_SP (CTX_THREAD_STATE + 80)
#define CTX_RETURN_SP_EMPTY (CTX_THREAD_STATE + 88)
#define CTX_RETURN_LOOKUP (CTX_THREAD_STATE + 96)
#define CTX_RETURN_MISSES (CTX_THREAD_STATE + 104) /* returns it had no entry for */
#define CTX_RETURN_HITS (CTX_THREAD_STATE + 112)   /* returns to their call's pad (--stats) */
/* The victim table's lookup (translator/victim_lookup.S): its address, and
 * the exit record of the site whose lookup missed in the table. */
#define CTX_VICTIM_LOOKUP (CTX_THREAD_STATE + 120)
#define CTX_IND_SITE (CTX_THREAD_STATE + 128)
#define CTX_VICTIM_COUNTDOWN (CTX_THREAD_STATE + 136)
/* Every so many victim hits, one goes to the dispatcher to move its
 * target back into the table. Such a trip costs a microsecond where a
 * victim hit costs some 40 cycles: at 8 they were most of cc1's 115 000
 * indirect misses; at 64 cc1 misses 67 000 times (dispatcher entries
 * 181 000 -> 132 000), python3, perl and stl as often as at 8. (A victim
 * index mixing in bits 16-31 took 10 000 more misses off cc1 but made
 * ls 5-8% slower.) */
#define VICTIM_PROMOTE_EVERY 64
/* Exit stubs (write_exit_stub()): `movl $id, %gs:CTX_STUB_ID`, then through
 * their chunk's tail `jmp *%gs:CTX_STUB_ENTRY` to dbo_stub_entry, which hands the dispatcher the
 * exit as STUB_ID_BASE + id (exit_by_id()). */
#define CTX_STUB_ENTRY (CTX_THREAD_STATE + 144)
#define CTX_STUB_ID (CTX_THREAD_STATE + 152)
/* 1 while the fast gate makes a call, 2 once a flush found it so (the
 * thread must then leave the call for the dispatcher): fast_gate.S. */
#define CTX_SYSCALL_STATE (CTX_THREAD_STATE + 160)
/* The vector state across the context switch (context_switch.S): saved
 * and loaded by hand, into and out of the XSAVE image at CTX_XSAVE (at
 * the offsets this CPU gives its components, kept here as offsets from the
 * context), or by xsaveopt/xrstor where XCR0 enables components the hand
 * code does not know (CTX_FP_XSAVE 1). CTX_FP_RELOAD 1: C code wrote the
 * image (context_fp_written()), so the next entry loads all of it, x87
 * included, which the hand code leaves in the registers. */
#define CTX_FP_XSAVE (CTX_THREAD_STATE + 168)
#define CTX_FP_RELOAD (CTX_THREAD_STATE + 172)
#define CTX_FP_YMM (CTX_THREAD_STATE + 176)  /* upper halves of ymm0-15 */
#define CTX_FP_K (CTX_THREAD_STATE + 180)    /* k0-7 */
#define CTX_FP_ZMMH (CTX_THREAD_STATE + 184) /* upper halves of zmm0-15 */
#define CTX_FP_HI16 (CTX_THREAD_STATE + 188) /* zmm16-31 */
/* 1: the upper halves of ymm/zmm0-15 were all zero when saved, so the
 * restore ends with vzeroupper: the CPU then knows them clean, as xrstor
 * leaves them, and legacy SSE code does not merge into them (stockfish ran
 * 1.45x native with them dirty, 1.01x clean) */
#define CTX_FP_CLEAN (CTX_THREAD_STATE + 192)
#define CTX_IBL_TABLE 0x5200
#define IBL_ENTRIES 65536           /* indexed by ibl_index() of the guest target */
#define IBL_SLOTS (IBL_ENTRIES + 4) /* the last slot's second way, then padding */
#define CTX_IBL_VICTIM (CTX_IBL_TABLE + IBL_SLOTS * 16)
#define CTX_TRACE_COUNTS (CTX_IBL_VICTIM + IBL_SLOTS * 16)
#define TRACE_MAX_HEADS 32768 /* trace head counters per thread, 2 bytes each */
/* Host deliveries of a signal not yet given to the guest keep their
 * siginfo here, oldest first, up to SIGINFO_QUEUE a signal (faults.c). */
#define SIGINFO_QUEUE 4
#define CTX_SIGINFO_QUEUE (CTX_TRACE_COUNTS + TRACE_MAX_HEADS * 2)
/* Jump-table sites (table_jump.c): each an indirect jump whose target
 * was just loaded from a table, with its own table of targets in every
 * thread's context, indexed by the low byte of the table index (saved at
 * SITE_KEY(site) as the target is loaded): the entries the targets lead
 * to, and their negated guest targets. A proven site (a constant table,
 * an index under 256) jumps through its entries without a check; its
 * empty slots lead to miss stubs (victim_lookup.S), which hand the
 * dispatcher the site and key at CTX_SITE_MISS. */
#define MAX_SITES 64
#define SITE_SLOTS 256
#define CTX_SITE_MISS (CTX_SIGINFO_QUEUE + 64 * SIGINFO_QUEUE * 128)
#define CTX_SITE_COUNTDOWN (CTX_SITE_MISS + 8) /* misses until one fills a slot */
#define CTX_SITE_HITS (CTX_SITE_MISS + 16)     /* with --stats */
#define SITE_LEARN_EVERY 64
#define CTX_SITE_KEYS (CTX_SITE_MISS + 64)
#define SITE_KEY(site) (CTX_SITE_KEYS + (site))
/* page-aligned: a site's slots (2 KiB each array) fault in together */
#define CTX_SITE_ENTRIES ((CTX_SITE_KEYS + MAX_SITES + 4095) & ~4095)
#define CTX_SITE_TAGS (CTX_SITE_ENTRIES + MAX_SITES * SITE_SLOTS * 8)
#define SITE_ENTRIES(site) (CTX_SITE_ENTRIES + (site)*SITE_SLOTS * 8)
#define SITE_TAGS(site) (CTX_SITE_TAGS + (site)*SITE_SLOTS * 8)
#define CTX_SIZE (CTX_SITE_TAGS + MAX_SITES * SITE_SLOTS * 8)

/* General registers in encoding order (the index into gpr[]). */
#define GPR_RAX 0
#define GPR_RCX 1
#define GPR_RDX 2
#define GPR_RBX 3
#define GPR_RSP 4
#define GPR_RBP 5
#define GPR_RSI 6
#define GPR_RDI 7
#define GPR_R8 8
#define GPR_R9 9
#define GPR_R10 10
#define GPR_R11 11
#define GPR_R12 12
#define GPR_R13 13
#define GPR_R14 14
#define GPR_R15 15

#ifdef __ASSEMBLER__
/* Probes the two ways of the target in %rdx in the table at %gs:\table
 * (the indirect table or its victim table; rcx free): jumps to \hit0 or
 * \hit1 on a match in the first or second way, falls through on a miss.
 * lea/jrcxz only, so the guest's flags are untouched. The same probe as
 * the one translated code has in line (indirect.c). */
/* clang-format off */
.macro TWO_WAY_PROBE table, hit0, hit1
        movzwl  %dx, %ecx                      /* rcx = 2 * ibl_index(target) */
        lea     (%rcx,%rcx), %rcx
        mov     %gs:\table(,%rcx,8), %rcx
        lea     (%rcx,%rdx), %rcx              /* zero iff the first way's tag matches */
        jrcxz   \hit0
        movzwl  %dx, %ecx
        lea     (%rcx,%rcx), %rcx
        mov     %gs:\table+16(,%rcx,8), %rcx
        lea     (%rcx,%rdx), %rcx              /* the second way */
        jrcxz   \hit1
.endm
/* clang-format on */
#endif

#ifndef __ASSEMBLER__
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

/* An in-cache indirect-branch table entry: the negated guest address (so a
 * flag-free `lea` yields zero on a hit) and the fragment's indirect entry,
 * INDIRECT_ENTRY_SIZE bytes before its cache_pc, which restores %rcx. */
#define INDIRECT_ENTRY_SIZE 9
        struct ibl_entry {
    uint64_t neg_guest_pc;
    uint64_t cache_pc;
};

/* Where indirect branches to f's guest pc go in: that code, or an inner
 * entry's stub (cache.h). */
static inline uint64_t fragment_indirect_entry(const struct fragment *f)
{
    return f->is_inner_entry ? (uint64_t)inner_entry_tail(f)->indirect_entry
                             : (uint64_t)f->cache_pc - INDIRECT_ENTRY_SIZE;
}

/* The table is two-way: a target lives in its own slot ibl_index() (its
 * low 16 bits, one movzx in translated code) or in the next one (hence a
 * slot more than IBL_ENTRIES); the dispatcher puts a new target first and
 * moves what was there second. One way let two hot targets 64 KiB apart
 * evict each other: python3 took 12 000 or 730 000 misses depending on
 * where ASLR put its libraries. A hash of the higher bits avoided that
 * too, but cost four more instructions on every lookup. */
static inline uint32_t ibl_index(uint64_t guest_pc)
{
    uint32_t lo = (uint32_t)guest_pc;
    return lo & (IBL_ENTRIES - 1);
}

/* Per-thread state only C code touches. */
struct thread_state {
    uint64_t signal_fs;      /* first: the host signal entry uses it */
    uint64_t guest_gs;       /* the guest's virtual %gs base */
    uint64_t sigmask;        /* the guest's signal mask (also the host's) */
    uint64_t inline_hits;    /* counted with --stats */
    uint64_t syscall_entry;  /* the fast gate, for `jmp *%gs:` */
    uint64_t syscall_return; /* the cache address it returns to */
    uint64_t syscall_nr;     /* the call it made */
    uint64_t fast_syscalls;  /* how many it made */
    uint64_t syscall_check;  /* its entry for numbers known only at run time */
    uint64_t return_sp;      /* the return stack (see CTX_RETURN_SP) */
    uint64_t parked_sp;
    uint64_t return_sp_empty;
    uint64_t return_lookup;
    uint64_t return_misses;
    uint64_t return_hits;
    uint64_t victim_lookup; /* dbo_victim_lookup */
    uint64_t ind_site;      /* the exit record a victim miss hands on */
    uint64_t victim_countdown;
    uint64_t stub_entry;    /* dbo_stub_entry */
    uint64_t stub_id;       /* the exit an exit stub leaves by (32 bits written) */
    uint64_t syscall_state; /* CTX_SYSCALL_STATE */
    uint32_t fp_xsave;      /* CTX_FP_XSAVE and on */
    uint32_t fp_reload;
    uint32_t fp_ymm, fp_k, fp_zmmh, fp_hi16;
    uint32_t fp_clean;
    uint64_t altstack_sp; /* the guest's sigaltstack, virtual */
    uint64_t altstack_size;
    int32_t altstack_flags;
    int32_t tid;
    uint64_t clear_tid;         /* CLONE_CHILD_CLEARTID / set_tid_address */
    uint64_t flush_epoch;       /* last cache flush this thread has seen */
    int32_t in_cache;           /* may be running translated code */
    int32_t is_main;            /* hosted by the process's first thread */
    struct guest_context *next; /* all live contexts, under the translator lock */
    int32_t sync_signal;        /* a fault to deliver first, whatever the mask */
    int32_t pad;
    uint64_t single_step_pc;   /* run this instruction alone (after a code write) */
    int32_t stepping;          /* trap-flag stepping towards a signal boundary */
    int32_t in_sigsuspend;     /* frames save suspend_mask, not sigmask */
    uint64_t suspend_mask;     /* the mask sigsuspend restores */
    uint8_t pending_count[64]; /* host deliveries not yet given to the guest */
    uint8_t siginfo_head[64];  /* siginfo_queue positions (wrapping counters) */
    uint8_t siginfo_tail[64];
    uint64_t fault_err, fault_trapno, fault_cr2; /* for the guest's ucontext */
    void *host_altstack;   /* the runtime's signal stack; kept when the context is reused */
    uint8_t *return_stack; /* the return stack's memory (guard page first); kept likewise */
    uint64_t ibl_epoch;    /* on the free list: the table was right at this epoch */
    struct trace_recording *recording; /* optimizer/: the trace being recorded */
};

/* One per guest thread; its address is the thread's %gs base. */
struct guest_context {
    uint64_t self;
    uint64_t spill_rcx;
    uint64_t spill_rdx;
    uint64_t jump_target;
    uint64_t ind_target;
    uint64_t exit_entry;
    uint64_t host_rsp;
    uint64_t host_fs;
    uint64_t guest_fs;
    uint64_t exit_record;
    uint64_t xsave_mask;
    uint64_t use_fsgsbase;
    uint64_t pending_signals;
    uint64_t rflags;
    uint64_t rip;
    uint64_t ind_hits;
    uint64_t gpr[16];
    uint8_t siginfo[64][128];
    uint8_t xsave[CTX_XSAVE_SIZE] __attribute__((aligned(64)));
    struct thread_state ts;
    uint8_t pad[CTX_IBL_TABLE - CTX_THREAD_STATE - sizeof(struct thread_state)];
    struct ibl_entry ibl[IBL_SLOTS];
    /* What the dispatcher put out of ibl[] to make room: the same two
     * ways, looked at (by dbo_victim_lookup) before a lookup that missed
     * in ibl[] leaves for the dispatcher. */
    struct ibl_entry ibl_victim[IBL_SLOTS];
    /* Runs of each trace head on this thread, reached through %gs by the
     * counters in the cache: data kept away from code (a store near code
     * the CPU has fetched can make it throw that code away) and in reach
     * of every chunk. Counting itself is what costs: with counters that
     * never fire, lua ran 2.3x (counts in the cache) or 2.6x (here) of
     * native, against 1.7x without. */
    uint16_t trace_counts[TRACE_MAX_HEADS];
    uint8_t siginfo_queue[64][SIGINFO_QUEUE][128];
    /* Jump-table sites' state in this thread (table_jump.c) */
    uint64_t site_miss;      /* a proven site's miss: its number << 32 | the key */
    uint64_t site_countdown; /* site misses until one goes to the dispatcher */
    uint64_t site_hits;      /* with --stats */
    uint8_t site_pad[CTX_SITE_KEYS - CTX_SITE_MISS - 24];
    uint8_t site_key[MAX_SITES]; /* the table index a load saved last (its low byte) */
    uint8_t site_pad2[CTX_SITE_ENTRIES - CTX_SITE_KEYS - MAX_SITES];
    uint64_t site_entry[MAX_SITES][SITE_SLOTS];
    int64_t site_neg_target[MAX_SITES][SITE_SLOTS];
};

_Static_assert(offsetof(struct guest_context, gpr) == CTX_GPR, "ctx layout");
_Static_assert(offsetof(struct guest_context, ind_hits) == CTX_IND_HITS, "ctx layout");
_Static_assert(offsetof(struct guest_context, siginfo) == CTX_SIGINFO, "ctx layout");
_Static_assert(offsetof(struct guest_context, xsave) == CTX_XSAVE, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts) == CTX_THREAD_STATE, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.guest_gs) == CTX_GUEST_GS, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.sigmask) == CTX_SIGMASK, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.inline_hits) == CTX_INLINE_HITS, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.syscall_entry) == CTX_SYSCALL_ENTRY, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.syscall_return) == CTX_SYSCALL_RETURN,
               "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.syscall_nr) == CTX_SYSCALL_NR, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.fast_syscalls) == CTX_FAST_SYSCALLS, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.syscall_check) == CTX_SYSCALL_CHECK, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.return_sp) == CTX_RETURN_SP, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.parked_sp) == CTX_PARKED_SP, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.return_sp_empty) == CTX_RETURN_SP_EMPTY,
               "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.return_lookup) == CTX_RETURN_LOOKUP, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.return_misses) == CTX_RETURN_MISSES, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.return_hits) == CTX_RETURN_HITS, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.victim_lookup) == CTX_VICTIM_LOOKUP, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.ind_site) == CTX_IND_SITE, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.victim_countdown) == CTX_VICTIM_COUNTDOWN,
               "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.stub_entry) == CTX_STUB_ENTRY, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.stub_id) == CTX_STUB_ID, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.syscall_state) == CTX_SYSCALL_STATE, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.fp_xsave) == CTX_FP_XSAVE, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.fp_reload) == CTX_FP_RELOAD, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.fp_hi16) == CTX_FP_HI16, "ctx layout");
_Static_assert(offsetof(struct guest_context, ts.fp_clean) == CTX_FP_CLEAN, "ctx layout");
_Static_assert(offsetof(struct guest_context, ibl) == CTX_IBL_TABLE, "ctx layout");
_Static_assert(offsetof(struct guest_context, ibl_victim) == CTX_IBL_VICTIM, "ctx layout");
_Static_assert(offsetof(struct guest_context, trace_counts) == CTX_TRACE_COUNTS, "ctx layout");
_Static_assert(offsetof(struct guest_context, site_miss) == CTX_SITE_MISS, "ctx layout");
_Static_assert(offsetof(struct guest_context, site_key) == CTX_SITE_KEYS, "ctx layout");
_Static_assert(offsetof(struct guest_context, site_entry) == CTX_SITE_ENTRIES, "ctx layout");
_Static_assert(offsetof(struct guest_context, site_neg_target) == CTX_SITE_TAGS, "ctx layout");
_Static_assert(offsetof(struct guest_context, site_countdown) == CTX_SITE_COUNTDOWN, "ctx layout");
_Static_assert(offsetof(struct guest_context, site_hits) == CTX_SITE_HITS, "ctx layout");
_Static_assert(sizeof(struct guest_context) == CTX_SIZE, "ctx layout");

/* Why a fragment left the cache; the dispatcher reads it from the record
 * that the exit stub passed in %rdx. */
enum __attribute__((packed)) exit_kind {
    EXIT_DIRECT,       /* direct branch to `target`, linkable */
    EXIT_CALL,         /* the same for a direct call (a callee is no loop head) */
    EXIT_INDIRECT,     /* indirect branch missed the table; target in ind_target */
    EXIT_SYSCALL,      /* `syscall`; resume at `target` */
    EXIT_SYSCALL_DONE, /* the fast gate made the call, whose outcome needs
                          the runtime (a signal, EINTR, EFAULT); resume at `target` */
    EXIT_STALE,        /* a self-checking fragment found its guest code changed */
    EXIT_TRACE_HEAD,   /* a trace head's counter reached zero: record a trace */
    EXIT_CPUID,        /* `cpuid`, answered by the dispatcher; resume at `target` */
};

struct fragment;

struct exit_record {
    /* Its guest target, as an offset from its fragment's guest_pc; one
     * that does not fit (far_target) is in a side table: exit_target().
     * An indirect exit has none: 0, or the jump-table site it misses for
     * (table_jump.c). */
    int32_t target_off;
    /* The next exit on the incoming list of the fragment it is linked to,
     * by its id (exit_id(); 0: none). The fragment it is linked to is not
     * kept either: the linked code says (link.c). */
    uint32_t next_incoming;
    /* Its code: the rel32 in the fragment body that reaches the stub, from
     * the fragment's cache_pc (0: none); a direct exit's stub, or an
     * indirect exit's inline imm64, the same way, or with STUB_IN_COLD
     * from the fragment's cold code (exit_branch(), exit_stub(),
     * exit_inline_tag()). A fragment's code and its cold code are each
     * under 32 KiB (builder.h). */
    uint16_t branch_off;
    uint16_t stub_off;
    enum exit_kind kind; /* one byte */
    bool linked : 1;
    bool linked_far : 1; /* through its stub, rewritten as a far jump */
    bool far_target : 1; /* target_off does not reach it */
    /* An indirect exit's inline check (see indirect.c) compares with the
     * negated target in its imm64, set once; the direct exit taken when it
     * matches is exit_from(e)'s exit inline_exit (its target is set along
     * with the imm64). -1: none. */
    int8_t inline_exit;
    uint8_t slot; /* its index in its fragment's exits + 1; 0: in no fragment */
};
#define STUB_IN_COLD 0x8000
#define STUB_LATE 0xffff /* its stub was made after it: cache_late_stub() */

/* A fragment has a few (a superblock up to 20). 16 bytes: most of cc1's
 * 354 000 exits are never taken, and their records were 48 bytes with
 * pointers for offsets, the linked fragment and the next incoming exit,
 * then 32 with 32-bit offsets: 11 MB of cc1's 27 MB of runtime heap. */
_Static_assert(sizeof(struct exit_record) == 16, "exit records stay small");
_Static_assert(sizeof(struct exit_record) == EXIT_RECORD_SIZE, "fragment layout (cache.h)");

/* The fragment an exit record belongs to (NULL for a record of the
 * runtime's own): its records follow it in its allocation (cache.h). */
static inline struct fragment *exit_from(const struct exit_record *e)
{
    return e->slot ? (struct fragment *)(e - (e->slot - 1)) - 1 : NULL;
}

/* An exit's guest target (an indirect one's is not kept; an inline
 * check's direct exit has its fragment's guest_pc until it is set). */
static inline uint64_t exit_target(const struct exit_record *e)
{
    if (e->far_target)
        return cache_far_target(e);
    return e->slot ? exit_from(e)->guest_pc + (int64_t)e->target_off : 0;
}

static inline void exit_set_target(struct exit_record *e, uint64_t target)
{
    int64_t off = (int64_t)(target - exit_from(e)->guest_pc);
    e->far_target = off != (int32_t)off;
    e->target_off = e->far_target ? 0 : (int32_t)off;
    if (e->far_target)
        cache_set_far_target(e, target);
}

/* An exit's id: its fragment's serial number (cache.h) and the exit's
 * index. 32 bits where a record's address took 64: in an exit stub, which
 * is 17 bytes, not 36 (a large program has 100 000s, most never run), and
 * on incoming lists. The dispatcher gets it from a stub as STUB_ID_BASE +
 * id, an address no record has. */
#define STUB_ID_BASE 0xffffffff80000000ull
#define STUB_SIZE 17
#define STUB_ID_AT 8 /* the id's offset in the stub */

/* Writes at `out` the exit stub that is to live at `at` (the same, or a
 * copy to compare with): `movl $id, %gs:stub_id; jmp <its chunk's stub
 * tail>`, which is `jmp *%gs:stub_entry` (cache_stub_tail(); 17 bytes where
 * an indirect jump of their own made stubs 20, 3.6 MB of cc1's cache).
 * No register or flag touched. */
static inline void write_exit_stub(uint8_t *out, const uint8_t *at, uint32_t id)
{
    static const uint8_t store_id[4] = {0x65, 0xc7, 0x04, 0x25};
    uint32_t slot = CTX_STUB_ID;
    int32_t rel = (int32_t)(cache_stub_tail(at) - (at + STUB_SIZE));
    __builtin_memcpy(out, store_id, 4);
    __builtin_memcpy(out + 4, &slot, 4);
    __builtin_memcpy(out + STUB_ID_AT, &id, 4);
    out[12] = 0xe9;
    __builtin_memcpy(out + 13, &rel, 4);
}

/* Writes the tail every exit stub of a chunk jumps to, STUB_TAIL_SIZE
 * bytes at `at`: `jmp *%gs:stub_entry`, then int3 padding. */
static inline void write_stub_tail(uint8_t *at)
{
    static const uint8_t jump[4] = {0x65, 0xff, 0x24, 0x25};
    uint32_t entry = CTX_STUB_ENTRY;
    __builtin_memset(at, 0xcc, STUB_TAIL_SIZE);
    __builtin_memcpy(at, jump, 4);
    __builtin_memcpy(at + 4, &entry, 4);
}

static inline uint32_t exit_id(const struct exit_record *e)
{
    return exit_from(e)->serial << 8 | (uint32_t)(e->slot - 1);
}

static inline struct exit_record *exit_by_id(uint64_t id)
{
    return id ? &fragment_exits(cache_fragment_by_serial((uint32_t)(id >> 8)))[id & 0xff] : NULL;
}

static inline uint8_t *exit_code_at(const struct exit_record *e, uint16_t off)
{
    if (!off)
        return NULL;
    const struct fragment *f = exit_from(e);
    return f->cache_pc + (off & STUB_IN_COLD ? f->cold_off + (off & ~STUB_IN_COLD) : off);
}

static inline uint8_t *exit_branch(const struct exit_record *e)
{
    return exit_code_at(e, e->branch_off);
}

/* A direct exit's stub (NULL: none, it was linked when made: link.c
 * gives it one if it is ever unlinked). */
static inline uint8_t *exit_stub(const struct exit_record *e)
{
    if (e->kind == EXIT_INDIRECT)
        return NULL;
    return e->stub_off == STUB_LATE ? cache_late_stub(e) : exit_code_at(e, e->stub_off);
}

static inline uint64_t *exit_inline_tag(const struct exit_record *e)
{
    return e->kind == EXIT_INDIRECT ? (uint64_t *)exit_code_at(e, e->stub_off) : NULL;
}

/* The size of this CPU's XSAVE area for the enabled features (asked of
 * cpuid once; fatal if more than CTX_XSAVE_SIZE). */
uint32_t translator_xsave_size(void);
/* C code wrote the guest's XSAVE image (a signal frame's, a new thread's):
 * make every component in it explicit and have the next entry load it all. */
void context_fp_written(struct guest_context *ctx);
/* Before C code reads the image: put the x87 registers, which the context
 * switch leaves alone, into it (on the thread that owns ctx). */
void context_fp_sync(struct guest_context *ctx);
/* The initial state (control words 0x37f and 0x1f80, all else 0), as a
 * new process and a signal handler start with. */
void context_fp_reset(struct guest_context *ctx);

/* Creates a context (reusing one of an exited thread when possible) and
 * adds it to the live list; context_release() takes it off at thread exit. */
struct guest_context *context_create(bool use_fsgsbase);
void context_release(struct guest_context *ctx);
int translator_live_threads(void);
/* In a forked child: ctx is the only thread left. */
void translator_after_fork(struct guest_context *ctx);
/* Jump-table sites (table_jump.c): the dispatcher fills the slot of the
 * site whose miss `exit` is with `to`; invalidation, trace installation
 * and flushes keep the slots in step with the thread's table. */
void table_jump_learn(struct guest_context *ctx, const struct exit_record *exit,
                      struct fragment *to);
void table_jump_forget(struct guest_context *ctx, uint64_t target);
void table_jump_retarget(struct guest_context *ctx, uint64_t target, uint64_t entry);
void table_jump_clear(struct guest_context *ctx);
void table_jump_flush(void);
/* A new context's proven sites' slots. */
void table_jump_init_context(struct guest_context *ctx);
/* Before memory from start on (len bytes) changes: proven sites whose
 * table is there are proven no longer, their jumps invalidated. */
void table_jump_memory_changes(uint64_t start, uint64_t len);
/* A proven site's empty slot leads to its stub for the jump's target
 * register (victim_lookup.S), which leaves with dbo_site_miss_record. */
extern struct exit_record dbo_site_miss_record;
/* The guest target of a proven site's miss (ind_target, or for a jump or
 * call through memory, what the table holds at the key). */
uint64_t table_jump_miss_target(const struct guest_context *ctx);
extern uint8_t dbo_site_miss_stubs[];
/* Calls fn on every thread's context, live or kept for reuse. */
void translator_contexts_each(void (*fn)(struct guest_context *, void *), void *arg);

/* --perf-map (perf_map.c): writes out the names buffered so far; called
 * before the process exits or executes another program. */
void translator_flush_perf_map(void);
void translator_perf_map_after_fork(void);

/* One lock serializes the runtime's shared state (fragment table, cache
 * memory, guest memory map, signal actions); translated code runs without
 * it, and so do host system calls. dispatch() takes it on entry. */
void translator_lock(void);
void translator_unlock(void);
bool translator_trylock(void); /* for host signal handlers */
void context_set_gs(struct guest_context *ctx);

/* Runs the guest from ctx->rip with ctx's registers; never returns.
 * Called without the translator lock. */
__attribute__((noreturn)) void translator_run(struct guest_context *ctx);
/* The first half of that for a new thread that its creator starts: where
 * it enters the cache, looked up by the creator under the lock (the new
 * thread counts as in the cache from then on). The new thread enters it
 * with dbo_enter_guest, without the lock. */
void *translator_thread_entry(struct guest_context *ctx);

/* A fragment goes on along the fall-through path of up to
 * dbo_opts.fragment_branches conditional branches (at most this many). */
#define TRANSLATOR_MAX_BRANCHES_INSIDE 16

/* Builds the fragment for guest_pc into the cache (the caller made sure no
 * fragment exists for it), or an inner entry into one built before that
 * runs through it (cache.h) if `inner_ok`. Returns NULL if guest_pc is not
 * executable. */
struct fragment *translate_fragment(struct guest_context *ctx, uint64_t guest_pc, bool inner_ok);

/* Traces: optimizer/ selects them (trace heads, their counters, recording
 * the path), the translator builds them. */
#define TRACE_MAX_BLOCKS 16
#define TRACE_REACH (256ul << 20) /* blocks this far from the head at most */
struct guest_range;

/* A basic block run once while a trace is recorded: not in the table,
 * never linked, its indirect branches always leave to the dispatcher. */
struct fragment *translate_record_block(struct guest_context *ctx, uint64_t guest_pc);

/* Builds a trace along the recorded blocks (each [start, end)), leaving
 * for end_pc after the last: branches go the recorded way as fall-through,
 * direct jumps and calls vanish, indirect branches and returns become
 * guards. NULL if it cannot be built (code on a volatile page). The
 * caller installs it (cache_install_trace). */
struct fragment *translate_trace(struct guest_context *ctx, const struct guest_range *blocks,
                                 int n_blocks, uint64_t end_pc);

/* Code in front of trace head `head` that counts its runs (per thread)
 * and leaves with EXIT_TRACE_HEAD at the threshold-th, else goes on to the
 * head. NULL if no cache memory is free near the head or all counters are
 * taken. With flags_dead (the guest's flags are dead at the head), it
 * counts with an add and its carry. Needs the lock. */
struct fragment *translate_head_counter(struct fragment *head, uint32_t threshold, bool flags_dead);
/* Puts a trace built by translate_trace() in place of its head, in the
 * table, in every link and in every thread's indirect table. */
void translator_install_trace(struct fragment *trace);
/* Counters handed out since the last flush (the part of trace_counts in use). */
uint32_t translator_counters_used(void);
/* The most ever handed out: no thread's trace_counts is touched beyond. */
uint32_t translator_counters_touched(void);
/* Cache memory was flushed: counters are handed out anew. */
void translator_counters_reset(void);

/* A one-instruction fragment that no table or link reaches: after a write
 * to its own code page, the writing instruction runs alone so that what
 * follows it is translated after the write. */
struct fragment *translate_single(struct guest_context *ctx, uint64_t guest_pc);

/* Maps a cache PC inside a live fragment to the guest instruction it
 * translates: `spilled` if the guest's rcx/rdx are in their spill slots
 * there, `at_boundary` if cache_pc is exactly where that instruction's
 * translation begins (the guest state is then exact). Needs the lock. */
bool translator_guest_pc(uint64_t cache_pc, uint64_t *guest_pc, bool *spilled, bool *at_boundary);

/* Called by the assembly exit entry with the guest's state saved in ctx;
 * returns the cache address to resume at. */
void *dispatch(struct guest_context *ctx);

/* The return stack (return_stack.S): RETURN_STACK_SIZE bytes of it, a
 * guard page below. True if addr is in ctx's guard page: a call found the
 * stack full (faults.c then empties it). */
#define RETURN_STACK_SIZE (1ul << 20)
#define RETURN_STACK_GUARD 4096ul
bool translator_return_stack_overflow(struct guest_context *ctx, uint64_t addr);
extern struct exit_record dbo_return_miss_record; /* its lookup's miss, EXIT_INDIRECT */

/* In-cache indirect-branch hits of all threads (counted with --stats): in
 * the table (returned) and by inline target checks (*inline_hits). */
uint64_t translator_indirect_hits(uint64_t *inline_hits);
/* Jumps that found their target in their jump-table site (with --stats;
 * also counted as the table's hits). */
uint64_t translator_site_hits(void);

/* Returns on the return stack, all threads: those that reached their
 * call's pad (returned; counted with --stats), and those that did not
 * (*misses: a mismatch, or the stack was empty). */
uint64_t translator_return_stack_counts(uint64_t *misses);

/* cpuid's answer for (leaf, subleaf) in regs (eax, ebx, ecx, edx), from
 * memory where it can (cpuid.c); cpuid_emulate() does a guest's cpuid.
 * Need the lock once threads run. */
void cpuid_answer(uint32_t leaf, uint32_t subleaf, uint32_t regs[4]);
void cpuid_emulate(struct guest_context *ctx);

/* System calls made by the gate's fast path, all threads. */
uint64_t translator_fast_syscalls(void);

/* Invalidates the fragments translated from [start, start+len) and the
 * indirect-table entries that reach them. Needs the lock. */
void translator_invalidate(uint64_t start, uint64_t len);
bool translator_lock_held(void);
/* A write to a write-protected code page: invalidates it, lets writes
 * through. False if addr is not such a page. Needs the lock. */
bool translator_write_fault(uint64_t addr);
/* The kernel cannot write to write-protected code pages (EFAULT): drop
 * all such protection. False if there was none. Needs the lock. */
bool translator_unprotect_code(void);

/* Drops every fragment and the indirect-table entries of every thread.
 * Cache memory another thread may still be executing is reused only once
 * every such thread has come back through the dispatcher. Needs the lock. */
void translator_flush(struct guest_context *ctx);

/* After a host signal handler redirected a thread out of the cache with its
 * guest state in ctx: deliver what is pending, return where to resume. */
void *dispatch_signal(struct guest_context *ctx);

/* The assembly entry points (context_switch.S). */
void dbo_exit_entry(void);
void dbo_stub_entry(void);
void dbo_signal_reenter(void);
void dbo_resume_guest_start(void), dbo_resume_guest_end(void); /* code range labels */
void dbo_signal_entry(int sig, void *info, void *uc);
void dbo_return_empty(void), dbo_return_lookup(void);          /* return_stack.S */
void dbo_return_stack_start(void), dbo_return_stack_end(void); /* its code range */
void dbo_victim_lookup(void);                                  /* victim_lookup.S */
void dbo_victim_lookup_start(void), dbo_victim_lookup_end(void);
__attribute__((noreturn)) void dbo_enter_guest(struct guest_context *ctx, void *cache_pc);

#endif
#endif
