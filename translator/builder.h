/* The state of one fragment being built, shared by translate.c (guest
 * instructions) and indirect.c (calls, returns and indirect branches).
 * Internal to translator/. Exits are referred to by index while the
 * fragment is built: the record addresses that code hands the dispatcher
 * are patched in once the fragment's single allocation exists. */
#ifndef DBO_TRANSLATOR_BUILDER_H
#define DBO_TRANSLATOR_BUILDER_H

#include <stdint.h>

#include "cache/cache.h"
#include "translator/emit.h"
#include "translator/translator.h"

#define MAX_FRAGMENT_INSNS 64
#define MAX_FRAGMENT_BYTES 4096 /* worst case for 64 copies plus exits */
/* those branches, then taken, fall-through (or return pad), inline target,
 * stale self-check */
#define MAX_EXITS (TRANSLATOR_MAX_BRANCHES_INSIDE + 4)
#define MAX_LITERALS 2
#define MAX_RECORD_REFS (MAX_EXITS + 2)

struct builder {
    struct guest_context *ctx;
    uint8_t *start; /* the fragment's entry */
    uint8_t *p;     /* emission cursor */
    struct pc_map_entry map[MAX_FRAGMENT_INSNS];
    int n_insns;
    struct exit_record exits[MAX_EXITS];
    int inline_exit_of[MAX_EXITS]; /* index of exits[i]'s inline exit, or -1 */
    int n_exits;
    /* `mov $record, %rdx` immediates, filled in with &frag->exits[index] */
    uint8_t *record_imm[MAX_RECORD_REFS];
    int record_index[MAX_RECORD_REFS];
    int n_record_refs;
    /* 64-bit constants placed after the code, each read by one rip-relative
     * instruction whose rel32 is patched when they are laid out */
    uint8_t *literal_rel32[MAX_LITERALS];
    uint64_t literal[MAX_LITERALS];
    int n_literals;
    uint8_t *inline_hit_rel32; /* the inline check's jump to its hit block */
    uint8_t *call_code;        /* this fragment's call, with a return pad */
    uint8_t *return_pad;       /* where that call returns to */
    uint64_t return_guest;
};

static inline int new_exit(struct builder *b, enum exit_kind kind, uint64_t target,
                           uint8_t *branch_rel32)
{
    int i = b->n_exits++;
    b->exits[i] =
        (struct exit_record){.kind = kind, .target = target, .branch_rel32 = branch_rel32};
    b->inline_exit_of[i] = -1;
    return i;
}

/* mov $<address of exit `index`>, %rdx */
static inline void emit_record(struct builder *b, int index)
{
    emit_u8(&b->p, 0x48);
    emit_u8(&b->p, 0xba);
    b->record_imm[b->n_record_refs] = b->p;
    b->record_index[b->n_record_refs++] = index;
    emit_u64(&b->p, 0);
}

/* indirect.c */
void emit_exit_stub(struct builder *b, int exit);
void emit_push_u64(struct builder *b, uint64_t v);
void emit_literals(struct builder *b);
void emit_indirect_branch(struct builder *b, int exit); /* target in %rdx */
void emit_return(struct builder *b, int exit, uint16_t pop_extra);
void emit_call_push(struct builder *b, uint64_t guest_return);

#endif
