"""An independent, scalar, exact (fractions) reading of SPEC section 1, for cross-checking golden.formats."""

import math
from fractions import Fraction


def round_half_even(q: Fraction) -> int:
    floor = math.floor(q)
    rest = q - floor
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and floor % 2):
        return floor + 1
    return floor


def fp4_exponent(m: Fraction) -> int:
    """Exponent field e for magnitude m (relative to S 2^-p), nearest, ties away."""
    if m < Fraction(1, 2) * Fraction(1, 4**6):
        return 0
    for e in range(1, 7):
        if m < Fraction(5, 2) * Fraction(4) ** (e - 7):
            return e
    return 7


def fp4_quantize_scalar(values, phase, unit=Fraction(1)):
    """values: list of Fractions (counts of unit). Returns (codes, S as Fraction)."""
    amax = max(abs(v) for v in values)
    if amax == 0:
        return [0] * len(values), unit
    k = 0
    while Fraction(2) ** k < amax:
        k += 1
    while Fraction(2) ** (k - 1) >= amax:
        k -= 1
    codes = []
    for v in values:
        m = abs(v) / Fraction(2) ** (k - phase)
        e = fp4_exponent(m)
        codes.append(e | (8 if (v < 0 and e > 0) else 0))
    return codes, unit * Fraction(2) ** k


def fp4_value(code, scale, phase):
    e = code & 7
    if e == 0:
        return Fraction(0)
    sign = -1 if code & 8 else 1
    return sign * scale * Fraction(1, 2**phase) * Fraction(4) ** (e - 7)
