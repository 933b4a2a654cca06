/*
 * fp16.c — IEEE binary16 and bfloat16 <-> binary32, in portable C (the specification for the
 * F16C/AVX-512 conversions used by the kernels).
 *
 * binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Every binary16 value is exactly
 * representable in binary32, so half -> float is exact; float -> half rounds to nearest, ties
 * to even, overflows to infinity, and keeps NaN a (quiet) NaN with the top payload bits.
 * bfloat16 is the top 16 bits of a binary32; float -> bf16 rounds to nearest even, NaN stays
 * NaN.
 */
#include "tensor/quant.h"

#include <string.h>

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float lm_half_to_f32(lm_half h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / NaN */
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal: man * 2^-24, exact in binary32 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

lm_half lm_f32_to_half(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) { /* inf or NaN */
        if (abs == 0x7f800000u) return sign | 0x7c00;
        uint16_t m = (uint16_t)((abs >> 13) & 0x3ff);
        return sign | 0x7c00 | 0x200 | m; /* quiet NaN, payload kept where it fits */
    }
    if (abs >= 0x477ff000u) return sign | 0x7c00; /* rounds to >= 65520: infinity */
    if (abs < 0x38800000u) {
        /* result is subnormal or zero: value / 2^-24 rounded to nearest even */
        if (abs < 0x33000000u) return sign; /* < 2^-25: rounds to zero */
        uint32_t e = abs >> 23;              /* 102 .. 112 */
        uint32_t m = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;            /* 14 .. 24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    /* normal: rebias and round the 13 dropped mantissa bits to nearest even */
    uint32_t q = (abs - 0x38000000u) >> 13;
    uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1))) q++; /* may carry into the exponent: ok */
    return sign | (uint16_t)q;
}

float lm_bf16_to_f32(lm_bf16 h) { return bits_f32((uint32_t)h << 16); }

lm_bf16 lm_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (lm_bf16)((u >> 16) | 0x40); /* quiet NaN */
    uint32_t rounding = 0x7fffu + ((u >> 16) & 1);
    return (lm_bf16)((u + rounding) >> 16);
}
