// Exhaustive check of hw.fp.fp16_product: every pair of binary16 bit patterns.
//
// The reference is the C float product of the two operands widened to float
// (exact: at most 22 significant bits, exponents inside float's normal range),
// with every NaN replaced by the canonical 0x7FC00000. Usage:
//   fp16_product_exhaustive A_BEGIN A_END   (checks a in [A_BEGIN, A_END), every b)
// Prints "checked N mismatches M" and exits 1 on any mismatch.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "Vfp16_product.h"

static float half_to_float(uint32_t h) {
    const uint32_t sign = h >> 15, exponent = (h >> 10) & 0x1F, fraction = h & 0x3FF;
    float magnitude;
    if (exponent == 0)
        magnitude = std::ldexp(static_cast<float>(fraction), -24);
    else if (exponent == 0x1F)
        magnitude = fraction ? NAN : INFINITY;
    else
        magnitude = std::ldexp(static_cast<float>(fraction | 0x400), static_cast<int>(exponent) - 25);
    return sign ? -magnitude : magnitude;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s A_BEGIN A_END\n", argv[0]);
        return 2;
    }
    const uint32_t begin = std::strtoul(argv[1], nullptr, 0), end = std::strtoul(argv[2], nullptr, 0);
    if (begin > end || end > 0x10000) {
        std::fprintf(stderr, "error: need 0 <= A_BEGIN <= A_END <= 65536\n");
        return 2;
    }
    static float table[0x10000];
    for (uint32_t i = 0; i < 0x10000; ++i) table[i] = half_to_float(i);

    Vfp16_product model;
    uint64_t checked = 0, mismatches = 0;
    for (uint32_t a = begin; a < end; ++a) {
        model.a = a;
        for (uint32_t b = 0; b < 0x10000; ++b) {
            model.b = b;
            model.eval();
            const float product = table[a] * table[b];
            uint32_t want;
            std::memcpy(&want, &product, sizeof want);
            if (std::isnan(product)) want = 0x7FC00000u;
            if (model.p != want) {
                if (mismatches < 5)
                    std::printf("a=%#06x b=%#06x: rtl %#010x, reference %#010x\n", a, b, model.p, want);
                ++mismatches;
            }
            ++checked;
        }
    }
    std::printf("checked %llu mismatches %llu\n", static_cast<unsigned long long>(checked),
                static_cast<unsigned long long>(mismatches));
    return mismatches != 0;
}
