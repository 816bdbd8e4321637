/* Optimizer: trace selection. Next-executing-tail (NET, after HP Dynamo):
 * the targets of backward branches and of exits from traces are trace
 * heads; each head counts its runs in the cache (a counter the translator
 * puts in front of it), and after --trace-threshold runs the thread records
 * the path it takes next, block by block, until the path closes a loop,
 * reaches another head or a system call, or has TRACE_MAX_BLOCKS blocks.
 * The translator then builds that path as one trace with the hot path as
 * fall-through, which replaces the head. All of it runs under the
 * translator lock, from the dispatcher. */
#ifndef DBO_OPTIMIZER_H
#define DBO_OPTIMIZER_H

#include <stdbool.h>
#include <stdint.h>

struct guest_context;
struct exit_record;
struct fragment;

/* Default --trace-threshold: 0, no traces, chosen by measuring (the
 * `+traces` column of make bench, benchmarks/README.md): with dbo's
 * superblocks already straight-line along the fall-through path, traces at
 * 50 gained on perl (1.66x against 1.79x of native) but cost 1.6x on gcc
 * (counting tens of thousands of heads, recording and translating again);
 * geomean 1.76x against 1.67x. 50 is the threshold of Dynamo and
 * DynamoRIO. */
#define OPTIMIZER_DEFAULT_TRACE_THRESHOLD 0
#define OPTIMIZER_CLASSIC_TRACE_THRESHOLD 50

/* What a direct exit that just went to `to` should be linked to: `to`, or
 * the counter in front of it if the exit makes it a trace head. */
struct fragment *optimizer_link_target(const struct exit_record *exit, struct fragment *to);

/* The head's counter (exit_from(exit)) reached zero: this thread records. */
void optimizer_head_hot(struct guest_context *ctx, struct fragment *counter);

/* Called by the dispatcher for each exit while the thread records, before
 * the exit is handled; target is where it goes (ind_target for indirect). */
void optimizer_exit_seen(struct guest_context *ctx, const struct exit_record *exit,
                         uint64_t target);

/* Called as the dispatcher leaves: builds the trace if the recording is
 * complete; else returns the block to run next while recording (NULL if
 * the thread does not record). `interrupted`: a signal is delivered or an
 * instruction is single-stepped, and the recording is dropped. */
struct fragment *optimizer_next_block(struct guest_context *ctx, bool interrupted);

/* Flags liveness (flags.c): true if the guest's status flags are dead at
 * guest_pc (written before they are read, on every way on that is known),
 * so that code put there may clobber them. False if not, or not known, or
 * with --no-flags-liveness. */
bool optimizer_flags_dead_at(uint64_t guest_pc);

/* The thread is gone: its recording with it. */
void optimizer_thread_exit(struct guest_context *ctx);

#endif
