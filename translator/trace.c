/* The code traces need beyond what fragments have: the guards that stand
 * for a trace's indirect branches and returns, and the counters in front of
 * trace heads. Which heads, and which paths, is optimizer/'s business. */
#include <stdlib.h>

#include "runtime/runtime.h"
#include "translator/builder.h"

/* The guard, guest rcx/rdx spilled (target in %rdx unless a return):
 *       mov (%rsp), %rdx           a return: its target, still on the stack
 *       movabs $-expected, %rcx
 *       lea (%rcx,%rdx), %rcx      zero iff it is the expected target
 *       jrcxz 1f
 *       jmp <miss: the usual lookup, after the trace's body>
 *   1:  lea 8+pop_extra(%rsp), %rsp   a return: pop it
 *       mov %gs:spill_rcx, %rcx; mov %gs:spill_rdx, %rdx
 * and the trace goes on at the expected target. Flag-free, like the lookup
 * it saves: a return whose call is in the same trace, or an indirect
 * branch that keeps its target, costs six instructions. Flag-free even
 * where the flags are dead at the expected target: a miss goes on to
 * another, where they may be live (a `cmp` guard there sent a callee's CF
 * to its real return site as the cmp left it: test_traces_flags). */
void emit_trace_guard(struct builder *b, uint64_t expected, int exit, bool is_return,
                      uint16_t pop_extra)
{
    static const uint8_t load_ret[] = {0x48, 0x8b, 0x14, 0x24}; /* mov (%rsp), %rdx */
    static const uint8_t compare[] = {
        0x48, 0x8d, 0x0c, 0x11, /* lea (%rcx,%rdx), %rcx */
        0xe3, 0x05,             /* jrcxz +5: over the jmp to the miss path */
    };
    if (is_return)
        emit_bytes(&b->p, load_ret, sizeof load_ret);
    emit_movabs(&b->p, GPR_RCX, -expected);
    emit_bytes(&b->p, compare, sizeof compare);
    emit_u8(&b->p, 0xe9);
    b->guards[b->n_guards++] = (struct trace_guard){
        .miss_rel32 = b->p, .exit = exit, .is_return = is_return, .pop_extra = pop_extra};
    emit_u32(&b->p, 0);
    emit_count(&b->p, CTX_INLINE_HITS);
    if (is_return)
        emit_pop_return(&b->p, pop_extra);
    emit_load_gs(&b->p, GPR_RCX, CTX_SPILL_RCX);
    emit_load_gs(&b->p, GPR_RDX, CTX_SPILL_RDX);
}

void emit_trace_guard_misses(struct builder *b)
{
    for (int i = 0; i < b->n_guards; i++) {
        struct trace_guard *g = &b->guards[i];
        patch_rel32(g->miss_rel32, b->p);
        if (g->is_return)
            emit_return(b, g->exit, g->pop_extra); /* loads the target again */
        else
            emit_indirect_branch(b, g->exit);
    }
    b->n_guards = 0;
}

static uint32_t counters_used, counters_touched;

uint32_t translator_counters_used(void)
{
    return counters_used;
}

uint32_t translator_counters_touched(void)
{
    return counters_touched;
}

void translator_counters_reset(void)
{
    counters_used = 0;
}

/* The head's counter, its count at %gs:COUNT (this thread's trace_counts):
 *       mov %rcx, %gs:spill_rcx
 *       movzwl %gs:COUNT, %ecx
 *       lea 1(%rcx), %ecx           flag-free: the head may need the flags
 *       mov %cx, %gs:COUNT
 *       lea -threshold(%rcx), %ecx  zero at the threshold-th run
 *       jrcxz 1f
 *       mov %gs:spill_rcx, %rcx
 *       jmp <head>                  exit 0, linked to the head
 *   1:  mov %rdx, %gs:spill_rdx
 *       mov $<exit 1>, %rdx         EXIT_TRACE_HEAD
 *       jmp *%gs:exit_entry
 * The count wraps at 65536: a head that could not become a trace asks
 * again that much later (and its counter is dropped meanwhile).
 * Where the flags are dead at the head (flags_dead), two instructions:
 *       addw $K, %gs:COUNT          K = 65536 / threshold, rounded up:
 *       jc 1f                       the carry comes at the threshold-th run
 *       jmp <head>
 *   1:  mov %rcx, %gs:spill_rcx; (then as above from 1:)
 * and the count wraps every threshold runs. */
struct fragment *translate_head_counter(struct fragment *head, uint32_t threshold, bool flags_dead)
{
    if (counters_used == TRACE_MAX_HEADS)
        return NULL;
    struct cache_chunk *chunk = cache_chunk_near(head->guest_pc, 256);
    if (!chunk)
        return NULL; /* no flush for a counter: link the head directly */
    struct builder b;
    builder_init(&b, NULL, BUILD_FRAGMENT, cache_chunk_cursor(chunk), cache_chunk_cold(chunk));
    uint32_t count = CTX_TRACE_COUNTS + 2 * counters_used++;
    if (counters_used > counters_touched)
        counters_touched = counters_used;
    uint32_t minus_threshold = -threshold;

    b.start = b.p;
    int go_on;
    uint8_t *rel8;
    if (flags_dead && threshold >= 2) {
        uint32_t k = (65536 + threshold - 1) / threshold;
        static const uint8_t add[] = {0x66, GS_PREFIX, 0x81, 0x04, 0x25}; /* addw $k, %gs:d32 */
        emit_bytes(&b.p, add, sizeof add);
        emit_u32(&b.p, count);
        emit_u8(&b.p, (uint8_t)k);
        emit_u8(&b.p, (uint8_t)(k >> 8));
        emit_u8(&b.p, 0x72); /* jc 1f */
        rel8 = b.p++;
        go_on = new_exit(&b, EXIT_DIRECT, head->guest_pc, emit_jmp_rel32(&b.p));
        *rel8 = (uint8_t)(b.p - (rel8 + 1));
        emit_store_gs(&b.p, GPR_RCX, CTX_SPILL_RCX);
    } else {
        static const uint8_t load[] = {GS_PREFIX, 0x0f, 0xb7, 0x0c,
                                       0x25},              /* movzwl %gs:d32, %ecx */
            inc[] = {0x8d, 0x49, 0x01},                    /* lea 1(%rcx), %ecx */
            store[] = {0x66, GS_PREFIX, 0x89, 0x0c, 0x25}, /* mov %cx, %gs:d32 */
            sub[] = {0x8d, 0x89};                          /* lea d32(%rcx), %ecx */
        emit_store_gs(&b.p, GPR_RCX, CTX_SPILL_RCX);
        emit_bytes(&b.p, load, sizeof load);
        emit_u32(&b.p, count);
        emit_bytes(&b.p, inc, sizeof inc);
        emit_bytes(&b.p, store, sizeof store);
        emit_u32(&b.p, count);
        emit_bytes(&b.p, sub, sizeof sub);
        emit_u32(&b.p, minus_threshold);
        emit_u8(&b.p, 0xe3);
        rel8 = b.p++;
        emit_load_gs(&b.p, GPR_RCX, CTX_SPILL_RCX);
        go_on = new_exit(&b, EXIT_DIRECT, head->guest_pc, emit_jmp_rel32(&b.p));
        *rel8 = (uint8_t)(b.p - (rel8 + 1));
    }
    int hot = new_exit(&b, EXIT_TRACE_HEAD, head->guest_pc, NULL);
    emit_store_gs(&b.p, GPR_RDX, CTX_SPILL_RDX);
    emit_record(&b, hot);
    emit_jmp_gs(&b.p, CTX_EXIT_ENTRY);
    b.exits[go_on].stub = b.p;
    patch_rel32(b.exits[go_on].branch_rel32, b.p);
    emit_exit_stub(&b, go_on);

    struct fragment *frag =
        cache_record_alloc(chunk, fragment_alloc_size(b.n_exits, 0, 0, false, 0));
    frag->guest_pc = head->guest_pc; /* guest_len 0 */
    place_exits(&b, frag);
    frag->cache_pc = b.start;
    frag->cache_size = (uint16_t)(b.p - b.start); /* a counter is some 60 bytes */
    frag->is_counter = true;
    cache_chunk_commit(chunk, b.p, 0);
    if (dbo_opts.perf_map)
        perf_map_fragment(&b, frag);
    cache_insert_helper(frag);
    cache_link(&fragment_exits(frag)[go_on], head);
    return frag;
}
