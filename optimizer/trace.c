/* NET trace selection (see optimizer.h): which exits make trace heads, the
 * recording of the path from a hot head, and when it ends. */
#include "optimizer/optimizer.h"

#include <inttypes.h>
#include <stdlib.h>

#include "cache/cache.h"
#include "runtime/runtime.h"
#include "translator/translator.h"

struct trace_recording {
    bool active;
    bool complete;
    uint64_t head;
    uint64_t end_pc;        /* where the last block went */
    struct fragment *block; /* the block this thread runs for the recording */
    struct guest_range blocks[TRACE_MAX_BLOCKS];
    int n_blocks;
    int call_depth; /* calls on the path not returned from */
};

struct fragment *optimizer_link_target(const struct exit_record *exit, struct fragment *to)
{
    const struct fragment *from = exit_from(exit);
    if (!dbo_opts.trace_threshold || to->is_trace || to->self_check || from->is_counter)
        return to;
    /* NET's heads: loops are entered again through a backward branch (a
     * target inside or before the code that branches), and a trace's exit
     * leads to code that is hot too. */
    if (!from->is_trace &&
        (exit->kind == EXIT_CALL || exit_target(exit) >= fragment_guest_end(from)))
        return to;
    struct fragment *counter = cache_counter(to->guest_pc);
    if (!counter) {
        counter = translate_head_counter(to, dbo_opts.trace_threshold,
                                         optimizer_flags_dead_at(to->guest_pc));
        if (!counter)
            return to;
        cache_set_counter(to->guest_pc, counter);
        dbo_stats.trace_heads++;
        if (dbo_opts.verbose)
            dbo_log("counter 0x%" PRIx64 "-0x%" PRIx64 " -> %p (%u bytes)", to->guest_pc,
                    to->guest_pc, (void *)counter->cache_pc, counter->cache_size);
    }
    return counter->dead ? to : counter;
}

static void abandon(struct guest_context *ctx)
{
    struct trace_recording *rec = ctx->ts.recording;
    rec->active = rec->complete = false;
    rec->block = NULL;
    dbo_stats.traces_abandoned++;
    /* No second try: branches linked to the head's counter go straight to
     * the head from now on. */
    struct fragment *counter = cache_counter(rec->head);
    struct fragment *head = cache_lookup(rec->head);
    if (counter && head)
        cache_drop_counter(counter, head);
}

void optimizer_head_hot(struct guest_context *ctx, struct fragment *counter)
{
    struct fragment *head = cache_lookup(counter->guest_pc);
    if (head && head->is_trace)
        return; /* another thread built it meanwhile */
    struct trace_recording *rec = ctx->ts.recording;
    if (!rec)
        rec = ctx->ts.recording = calloc(1, sizeof *rec);
    if (rec->active)
        return;
    *rec = (struct trace_recording){.active = true, .head = counter->guest_pc};
}

void optimizer_exit_seen(struct guest_context *ctx, const struct exit_record *exit, uint64_t target)
{
    struct trace_recording *rec = ctx->ts.recording;
    if (!rec || !rec->active || rec->complete)
        return;
    const struct fragment *from = exit_from(exit);
    if (from != rec->block || exit->kind == EXIT_STALE || exit->kind == EXIT_TRACE_HEAD) {
        abandon(ctx); /* it left the recorded code some other way */
        return;
    }
    rec->blocks[rec->n_blocks++] = (struct guest_range){from->guest_pc, fragment_guest_end(from)};
    rec->end_pc = target;
    /* A trace follows a return only to a call on its path, and indirect
     * branches only with --trace-indirect (as translate_trace does). */
    bool ends_here = (from->ends_with == ENDS_RETURN && rec->call_depth == 0) ||
                     (!dbo_opts.trace_indirect &&
                      (from->ends_with == ENDS_INDIRECT ||
                       (from->ends_with == ENDS_CALL && exit->kind == EXIT_INDIRECT)));
    if (from->ends_with == ENDS_CALL)
        rec->call_depth++;
    else if (from->ends_with == ENDS_RETURN && rec->call_depth > 0)
        rec->call_depth--;
    struct fragment *there = cache_lookup(target);
    /* The path ends where a loop closes (back at the head, or a backward
     * branch), at another head or trace, at a system call, or when full. */
    rec->complete =
        ends_here || exit->kind == EXIT_SYSCALL || exit->kind == EXIT_CPUID ||
        target == rec->head || (exit->kind == EXIT_DIRECT && target < fragment_guest_end(from)) ||
        (there && there->is_trace) || cache_counter(target) || rec->n_blocks == TRACE_MAX_BLOCKS ||
        (target > rec->head ? target - rec->head : rec->head - target) > TRACE_REACH;
}

struct fragment *optimizer_next_block(struct guest_context *ctx, bool interrupted)
{
    struct trace_recording *rec = ctx->ts.recording;
    if (!rec || !rec->active)
        return NULL;
    if (interrupted) {
        abandon(ctx);
        return NULL;
    }
    if (rec->complete) {
        rec->active = rec->complete = false;
        rec->block = NULL;
        struct fragment *trace = translate_trace(ctx, rec->blocks, rec->n_blocks, rec->end_pc);
        if (!trace) {
            abandon(ctx);
            return NULL;
        }
        translator_install_trace(trace);
        if (dbo_opts.verbose)
            dbo_log("trace at 0x%" PRIx64 ": %d blocks, %u instructions, then 0x%" PRIx64,
                    rec->head, rec->n_blocks, trace->n_insns, rec->end_pc);
        return NULL;
    }
    rec->block = translate_record_block(ctx, ctx->rip);
    if (!rec->block)
        abandon(ctx);
    return rec->block;
}

void optimizer_thread_exit(struct guest_context *ctx)
{
    free(ctx->ts.recording);
    ctx->ts.recording = NULL;
}
