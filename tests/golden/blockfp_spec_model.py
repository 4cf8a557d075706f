"""An independent, scalar, exact reading of SPEC section 7 (MXFP4, NVFP4), for cross-checking golden and the RTL.

It knows only the SPEC: element and scale values from their bit fields, encoders
by exhaustive nearest search over the codes (ties to the even code), the
GEMM with exact rationals (:class:`fractions.Fraction`) rounded to binary32 by
hand. Nothing here imports golden or hw.
"""

import math
import struct
from fractions import Fraction

import numpy as np

BLOCK_SIZE = {"mxfp4": 32, "nvfp4": 16}
CANONICAL_NAN = 0x7FC00000
FLT_MAX = float(np.finfo(np.float32).max)


def e2m1_value(code):
    e, m = (code >> 1) & 3, code & 1
    magnitude = Fraction(m, 2) if e == 0 else Fraction(2) ** (e - 1) * (1 + Fraction(m, 2))
    return -magnitude if code & 8 else magnitude


def e4m3_value(code):
    """OCP E4M3FN: bias 7, 3 mantissa bits, subnormals, 0x7F/0xFF NaN (None)."""
    if code & 0x7F == 0x7F:
        return None
    e, m = (code >> 3) & 0xF, code & 7
    magnitude = Fraction(m, 8) * Fraction(2) ** -6 if e == 0 else Fraction(2) ** (e - 7) * (1 + Fraction(m, 8))
    return -magnitude if code & 0x80 else magnitude


def e8m0_value(code):
    return None if code == 255 else Fraction(2) ** (code - 127)


def _nearest(x, magnitudes, sign_bit):
    """Code of the nearest magnitude (ties to the even code, saturating); sign only on non-zeros."""
    x = Fraction(x)
    best = min(range(len(magnitudes)), key=lambda c: (abs(abs(x) - magnitudes[c]), c % 2))
    return best | (sign_bit if x < 0 and best else 0)


E2M1_MAGNITUDES = [e2m1_value(c) for c in range(8)]
E4M3_MAGNITUDES = [e4m3_value(c) for c in range(0x7F)]


def e2m1_encode(x):
    return _nearest(x, E2M1_MAGNITUDES, 8)


def e4m3_encode(x):
    return _nearest(x, E4M3_MAGNITUDES, 0x80)


def floor_log2(x):
    """floor(log2(x)) of a positive rational, exactly."""
    x = Fraction(x)
    k = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** k > x:
        k -= 1
    while Fraction(2) ** (k + 1) <= x:
        k += 1
    return k


def quantize_rows(rows, fmt):
    """SPEC 7 quantizer of a list of rows (lists of Python floats), blocks along each row.

    Returns (codes rows, scale rows, tensor scale).
    """
    bs = BLOCK_SIZE[fmt]
    tensor_amax = max((abs(v) for row in rows for v in row), default=0.0)
    g = 1.0
    if fmt == "nvfp4" and tensor_amax > 0:
        g = float(np.float32(min(2688.0 / tensor_amax, FLT_MAX)))
    codes, scales = [], []
    for row in rows:
        padded = list(row) + [0.0] * (-len(row) % bs)
        row_codes, row_scales = [], []
        for start in range(0, len(padded), bs):
            block = padded[start : start + bs]
            amax = max(abs(v) for v in block)
            if fmt == "mxfp4":
                x = 0 if amax == 0 else min(max(floor_log2(amax) - 2 + 127, 0), 254)
                row_scales.append(x)
                row_codes += [e2m1_encode(Fraction(v) / e8m0_value(x)) for v in block]
            else:
                s = 0 if tensor_amax == 0 else e4m3_encode(amax * g / 6)
                row_scales.append(s)
                value = e4m3_value(s)
                row_codes += [0 if value == 0 else e2m1_encode(v * g / float(value)) for v in block]
        codes.append(row_codes[: len(row)])
        scales.append(row_scales)
    return codes, scales, g


def decode_rows(codes, scales, g, fmt):
    bs = BLOCK_SIZE[fmt]
    scale_value = e8m0_value if fmt == "mxfp4" else e4m3_value
    out = []
    for row, row_scales in zip(codes, scales):
        values = [e2m1_value(c) * scale_value(row_scales[k // bs]) for k, c in enumerate(row)]
        out.append([float(v / Fraction(g)) if fmt == "nvfp4" else float(v) for v in values])
    return out


def round_half_even(q):
    floor = math.floor(q)
    rest = q - floor
    return floor + 1 if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2) else floor


def fp32_bits(x, negative_zero=False):
    """binary32 pattern of the rational ``x`` rounded to nearest even (gradual underflow, overflow to inf)."""
    sign = 0x80000000 if x < 0 or (x == 0 and negative_zero) else 0
    magnitude = abs(Fraction(x))
    if magnitude == 0:
        return sign
    quantum = Fraction(2) ** max(floor_log2(magnitude) - 23, -149)
    rounded = round_half_even(magnitude / quantum) * quantum
    if rounded >= Fraction(2) ** 128:
        return sign | 0x7F800000
    if rounded == 0:
        return sign
    return sign | struct.unpack("<I", struct.pack("<f", float(rounded)))[0]


def fp32_value(bits):
    """Fraction of a finite pattern, or 'inf' / '-inf' / 'nan'."""
    exponent, fraction = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    if exponent == 0xFF:
        return "nan" if fraction else ("-inf" if bits >> 31 else "inf")
    value = (
        Fraction(fraction, 1 << 23) * Fraction(2) ** -126
        if exponent == 0
        else ((1 + Fraction(fraction, 1 << 23)) * Fraction(2) ** (exponent - 127))
    )
    return -value if bits >> 31 else value


def fp32_add(x_bits, y_bits):
    """binary32 x + y, one round to nearest even, canonical NaN."""
    x, y = fp32_value(x_bits), fp32_value(y_bits)
    if "nan" in (x, y) or {x, y} == {"inf", "-inf"}:
        return CANONICAL_NAN
    for v, bits in ((x, x_bits), (y, y_bits)):
        if isinstance(v, str):
            return bits
    total = x + y
    # An exact zero sum is +0 under round to nearest even, unless both addends are -0.
    return fp32_bits(total, negative_zero=(total == 0 and x_bits == y_bits == 0x80000000))


def block_gemm_bits(a_codes, a_scales, b_codes, b_scales, fmt, n=None):
    """SPEC 7 GEMM of nested lists of ints: an M x N list of binary32 patterns (give ``n`` when K = 0)."""
    bs = BLOCK_SIZE[fmt]
    m, k = len(a_codes), len(b_codes)
    n = len(b_codes[0]) if n is None else n
    blocks = -(-k // bs)
    out = []
    for i in range(m):
        row = []
        for j in range(n):
            acc = 0
            for blk in range(blocks):
                ks = range(blk * bs, min(k, (blk + 1) * bs))
                p = sum(int(2 * e2m1_value(a_codes[i][kk])) * int(2 * e2m1_value(b_codes[kk][j])) for kk in ks)
                if fmt == "mxfp4":
                    scale = Fraction(2) ** (a_scales[i][blk] + b_scales[blk][j] - 254)
                else:
                    scale = e4m3_value(a_scales[i][blk]) * e4m3_value(b_scales[blk][j])
                term = fp32_bits(Fraction(p, 4) * scale, negative_zero=False)
                acc = fp32_add(acc, term)
            row.append(acc)
        out.append(row)
    return out
