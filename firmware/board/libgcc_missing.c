/* Debian's gcc-xtensa-lx106 12.2 ships a libgcc.a without the assembler
 * helpers of gcc's xtensa lib1funcs.S (the lx106 has no divider), so every
 * integer division or 64-bit multiply fails to link. These are plain C
 * replacements; libgcc's own __udivmoddi4/__divmoddi4 do the 64-bit work.
 * Soft-float arithmetic (__addsf3, __muldf3, ...) is missing as well and is
 * not provided: firmware here must not use float arithmetic. */
#include <stdint.h>

uint32_t __udivsi3(uint32_t n, uint32_t d);
int32_t __divsi3(int32_t n, int32_t d);
uint32_t __umodsi3(uint32_t n, uint32_t d);
uint64_t __udivdi3(uint64_t n, uint64_t d);
uint64_t __umoddi3(uint64_t n, uint64_t d);
int64_t __divdi3(int64_t n, int64_t d);
int64_t __muldi3(int64_t a, int64_t b);
uint64_t __umulsidi3(uint32_t a, uint32_t b);
uint64_t __udivmoddi4(uint64_t n, uint64_t d, uint64_t *rem);
int64_t __divmoddi4(int64_t n, int64_t d, int64_t *rem);

static uint32_t udivmod32(uint32_t n, uint32_t d, uint32_t *rem)
{
    if (d == 0) {
        /* Real hardware would raise IntegerDivideByZero; make it visible. */
        __asm__ volatile("ill");
    }
    uint32_t q = 0, r = 0;
    int bits = 32 - __builtin_clz(n | 1);
    for (int i = bits - 1; i >= 0; i--) {
        r = (r << 1) | ((n >> i) & 1u);
        if (r >= d) {
            r -= d;
            q |= 1u << i;
        }
    }
    if (rem)
        *rem = r;
    return q;
}

uint32_t __udivsi3(uint32_t n, uint32_t d)
{
    return udivmod32(n, d, 0);
}

uint32_t __umodsi3(uint32_t n, uint32_t d)
{
    uint32_t r;
    udivmod32(n, d, &r);
    return r;
}

int32_t __divsi3(int32_t n, int32_t d)
{
    uint32_t un = n < 0 ? 0u - (uint32_t)n : (uint32_t)n;
    uint32_t ud = d < 0 ? 0u - (uint32_t)d : (uint32_t)d;
    uint32_t q = udivmod32(un, ud, 0);
    return (n < 0) != (d < 0) ? (int32_t)(0u - q) : (int32_t)q;
}

uint64_t __udivdi3(uint64_t n, uint64_t d)
{
    return __udivmoddi4(n, d, 0);
}

uint64_t __umoddi3(uint64_t n, uint64_t d)
{
    uint64_t r;
    __udivmoddi4(n, d, &r);
    return r;
}

int64_t __divdi3(int64_t n, int64_t d)
{
    return __divmoddi4(n, d, 0);
}

/* 64x64->64 from 16-bit partial products, because the lx106's MULL only
 * yields the low 32 bits of a product. */
static uint64_t umul32x32(uint32_t a, uint32_t b)
{
    uint32_t al = a & 0xffff, ah = a >> 16, bl = b & 0xffff, bh = b >> 16;
    uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    return ll + ((lh + hl) << 16) + (hh << 32);
}

uint64_t __umulsidi3(uint32_t a, uint32_t b)
{
    return umul32x32(a, b);
}

int64_t __muldi3(int64_t a, int64_t b)
{
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    uint32_t al = (uint32_t)ua, ah = (uint32_t)(ua >> 32);
    uint32_t bl = (uint32_t)ub, bh = (uint32_t)(ub >> 32);
    uint64_t r = umul32x32(al, bl);
    r += (uint64_t)(al * bh + ah * bl) << 32;
    return (int64_t)r;
}
