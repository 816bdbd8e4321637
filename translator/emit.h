/* Machine-code emitters for the sequences the translator writes around
 * copied guest instructions. Internal to translator/. Each writes at *p and
 * advances it. Runtime state is reached only through %gs: absolute
 * addressing (ModRM mod=00 rm=100, SIB base=101 index=100: disp32 only). */
#ifndef DBO_TRANSLATOR_EMIT_H
#define DBO_TRANSLATOR_EMIT_H

#include <stdint.h>
#include <string.h>

#define GS_PREFIX 0x65

static inline void emit_u8(uint8_t **p, uint8_t b)
{
    *(*p)++ = b;
}
static inline void emit_u32(uint8_t **p, uint32_t v)
{
    memcpy(*p, &v, 4);
    *p += 4;
}
static inline void emit_u64(uint8_t **p, uint64_t v)
{
    memcpy(*p, &v, 8);
    *p += 8;
}
static inline void emit_bytes(uint8_t **p, const void *b, size_t n)
{
    memcpy(*p, b, n);
    *p += n;
}

/* n bytes (w to 2w, w a constant) from b to d by two overlapping moves of
 * w bytes. */
static inline __attribute__((always_inline)) void copy_two_moves(uint8_t *d, const uint8_t *b,
                                                                 size_t n, size_t w)
{
    uint64_t head, tail;
    memcpy(&head, b, w);
    memcpy(&tail, b + n - w, w);
    memcpy(d, &head, w);
    memcpy(d + n - w, &tail, w);
}

/* The same for an instruction's bytes (1 to 15), by two overlapping moves
 * of 8, 4 or 2 bytes rather than a call to memcpy: the translator copies
 * every guest instruction it can. */
static inline void emit_insn_bytes(uint8_t **p, const uint8_t *b, size_t n)
{
    uint8_t *d = *p;
    if (n >= 8)
        copy_two_moves(d, b, n, 8);
    else if (n >= 4)
        copy_two_moves(d, b, n, 4);
    else if (n >= 2)
        copy_two_moves(d, b, n, 2);
    else
        d[0] = b[0];
    *p += n;
}

/* mov %reg, %gs:off  /  mov %gs:off, %reg  (reg: 0..15) */
static inline void emit_store_gs(uint8_t **p, int reg, uint32_t off)
{
    emit_u8(p, GS_PREFIX);
    emit_u8(p, 0x48 | (reg >> 3) << 2);
    emit_u8(p, 0x89);
    emit_u8(p, 0x04 | (reg & 7) << 3);
    emit_u8(p, 0x25);
    emit_u32(p, off);
}

static inline void emit_load_gs(uint8_t **p, int reg, uint32_t off)
{
    emit_u8(p, GS_PREFIX);
    emit_u8(p, 0x48 | (reg >> 3) << 2);
    emit_u8(p, 0x8b);
    emit_u8(p, 0x04 | (reg & 7) << 3);
    emit_u8(p, 0x25);
    emit_u32(p, off);
}

/* jmp *%gs:off */
static inline void emit_jmp_gs(uint8_t **p, uint32_t off)
{
    static const uint8_t b[] = {GS_PREFIX, 0xff, 0x24, 0x25};
    emit_bytes(p, b, sizeof b);
    emit_u32(p, off);
}

/* movabs $imm64, %reg (reg: 0..7); the imm64 is the last 8 bytes */
static inline void emit_movabs(uint8_t **p, int reg, uint64_t v)
{
    emit_u8(p, 0x48);
    emit_u8(p, (uint8_t)(0xb8 + reg));
    emit_u64(p, v);
}

/* lea 8+pop_extra(%rsp), %rsp: a return's pop of its address (and of
 * `ret $pop_extra`'s bytes), flags untouched */
static inline void emit_pop_return(uint8_t **p, uint16_t pop_extra)
{
    static const uint8_t lea[] = {0x48, 0x8d, 0xa4, 0x24};
    emit_bytes(p, lea, sizeof lea);
    emit_u32(p, 8u + pop_extra);
}

/* Linking rewrites a branch's rel32 while other threads may execute it: the
 * store is atomic only if the field stays within one cache line, so pad
 * with nops until it does. */
static inline void pad_for_rel32(uint8_t **p, int opcode_len)
{
    while (((uintptr_t)*p + opcode_len) % 64 > 60)
        emit_u8(p, 0x90);
}

/* jmp rel32 / jcc rel32 with a zero displacement; returns the rel32's address. */
static inline uint8_t *emit_jmp_rel32(uint8_t **p)
{
    pad_for_rel32(p, 1);
    emit_u8(p, 0xe9);
    uint8_t *rel = *p;
    emit_u32(p, 0);
    return rel;
}

static inline uint8_t *emit_jcc_rel32(uint8_t **p, int cond)
{
    pad_for_rel32(p, 2);
    emit_u8(p, 0x0f);
    emit_u8(p, 0x80 | cond);
    uint8_t *rel = *p;
    emit_u32(p, 0);
    return rel;
}

static inline void patch_rel32(uint8_t *rel, const uint8_t *target)
{
    int32_t d = (int32_t)(target - (rel + 4));
    memcpy(rel, &d, 4);
}

static inline int fits_rel32(const uint8_t *from_end, const uint8_t *target)
{
    int64_t d = target - from_end;
    return d == (int32_t)d;
}

/* jmp *0(%rip); .quad target — reaches anywhere, no register, 14 bytes. */
#define FAR_JMP_SIZE 14
static inline void emit_far_jmp(uint8_t **p, uint64_t target)
{
    static const uint8_t b[] = {0xff, 0x25, 0, 0, 0, 0};
    emit_bytes(p, b, sizeof b);
    emit_u64(p, target);
}

#endif
