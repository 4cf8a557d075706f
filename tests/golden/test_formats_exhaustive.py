"""Exhaustive checks: every code of every 4-bit format, every FP4 level boundary and tie in both phases."""

from fractions import Fraction

import pytest
import torch

from golden.formats import (
    FP4_RADIX4,
    INT4,
    TORCH_OPS,
    UINT4,
    fp4_decode,
    fp4_quantize,
    quantize_input,
    quantize_pact,
    quantize_weight,
)
from tests.golden.spec_model import fp4_quantize_scalar, fp4_value, round_half_even


@pytest.mark.parametrize("fmt, expected", [(INT4, list(range(0, 8)) + list(range(-8, 0))), (UINT4, list(range(16)))])
def test_integer_codes_decode(fmt, expected):
    values = fmt.value(torch.arange(16), TORCH_OPS)
    assert values.tolist() == expected
    assert (fmt.min_value, fmt.max_value) == (min(expected), max(expected))


@pytest.mark.parametrize("phase", [0, 1])
@pytest.mark.parametrize("scale", [1.0, 1.28, 2.0**-20, 3e5])
def test_fp4_every_code_decodes(phase, scale):
    values = fp4_decode(torch.arange(16, dtype=torch.uint8), scale, phase=phase)
    assert values.dtype == torch.float64
    for code in range(16):
        assert Fraction(values[code].item()) == fp4_value(code, Fraction(scale), phase)


@pytest.mark.parametrize("phase", [0, 1])
def test_fp4_every_code_round_trips(phase):
    # Each nonzero level, quantized in a tensor whose amax fixes S = 1, comes back as itself.
    levels = fp4_decode(torch.arange(16, dtype=torch.uint8), 1.0, phase=phase)
    anchor = torch.tensor([1.0], dtype=torch.float64)  # amax = 1 -> k = 0, S = 1
    c, scale = fp4_quantize(torch.cat([levels, anchor]), phase=phase)
    assert scale == 1.0
    expected = [code if code & 7 else 0 for code in range(16)]
    assert c[:16].tolist() == expected


def _boundaries(phase):
    """Every threshold of m, as real values with S = 1, and points just below and above."""
    points = [Fraction(1, 2) * Fraction(1, 4**6)] + [Fraction(5, 2) * Fraction(4) ** (e - 7) for e in range(1, 7)]
    points += [Fraction(4) ** (e - 7) for e in range(1, 8)]  # the levels themselves
    values = []
    for m in points:
        x = m / 2**phase  # real value whose m equals the threshold
        for nudge in (Fraction(0), Fraction(1, 2**50), -Fraction(1, 2**50)):
            values.append(x * (1 + nudge))
    return values


@pytest.mark.parametrize("phase", [0, 1])
@pytest.mark.parametrize("sign", [1, -1])
def test_fp4_every_boundary_and_tie(phase, sign):
    # The 1 pins S = 1 (k = 0); values above it would move the scale.
    values = [sign * v for v in _boundaries(phase) if v <= 1] + [Fraction(1)]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    assert all(Fraction(float(v)) == v for v in values), "test values must be exact in float64"
    expected, scale = fp4_quantize_scalar(values, phase)
    got, got_scale = fp4_quantize(tensor, phase=phase)
    assert got_scale == scale == 1
    assert got.tolist() == expected


@pytest.mark.parametrize("phase", [0, 1])
def test_fp4_integer_accumulator_all_small_values(phase):
    # Every integer -300..300 with a unit: exact against the fraction model.
    v = torch.arange(-300, 301)
    expected, scale = fp4_quantize_scalar([Fraction(int(x)) for x in v], phase, Fraction(1, 64))
    got, got_scale = fp4_quantize(v, phase=phase, unit=1 / 64)
    assert Fraction(got_scale) == scale
    assert got.tolist() == expected


def test_input_quantizer_every_level_and_tie():
    # SPEC: clamp(round_half_even(15 p - 8), -8, 7), computed in float64. Pixels k/510 hit every
    # level and every half-integer tie of 15 p - 8 (p = (n + 8.5) / 15 up to float64 rounding).
    p = torch.tensor([k / 510 for k in range(511)] + [(n + 8.5) / 15 for n in range(-8, 7)], dtype=torch.float64)
    got = quantize_input(p).tolist()
    expected = [max(-8, min(7, round_half_even(Fraction(15 * x - 8)))) for x in p.tolist()]
    assert got == expected
    assert set(got) == set(range(-8, 8))
    assert quantize_input(torch.tensor([-0.5, 0.0, 1.0, 2.0])).tolist() == [-8, -8, 7, 7]


def test_weight_quantizer_ties_and_clamp():
    step = 0.5
    w = torch.tensor([-10.0, -3.75, -1.25, -0.75, -0.25, 0.0, 0.25, 0.75, 1.25, 3.25, 3.5, 10.0], dtype=torch.float64)
    # w / step: -20 -7.5 -2.5 -1.5 -0.5 0 0.5 1.5 2.5 6.5 7 20
    assert quantize_weight(w, step).tolist() == [-7, -7, -2, -2, 0, 0, 0, 2, 2, 6, 7, 7]


def test_pact_every_code():
    alpha = 3.0
    codes = torch.arange(16, dtype=torch.float64)
    x = codes * (alpha / 15)
    assert quantize_pact(x, alpha).tolist() == list(range(16))
    # Ties between codes round half to even; negatives clamp to 0, above alpha to 15.
    mid = (codes[:-1] + 0.5) * (alpha / 15)
    got = quantize_pact(mid, alpha).tolist()
    # SPEC's float64 pipeline: da = alpha / 15, then y / da, then round half to even.
    expected = [round_half_even(Fraction(y / (alpha / 15))) for y in mid.tolist()]
    assert got == expected
    assert quantize_pact(torch.tensor([-1.0, 100.0]), alpha).tolist() == [0, 15]


def test_fp4_product_rule_every_code():
    x = torch.arange(-8, 16).repeat_interleave(16)
    g = torch.arange(16).repeat(24)
    got = FP4_RADIX4.scale(g, x, TORCH_OPS)
    e, s = g & 7, (g >> 3) & 1
    expected = [
        0 if ei == 0 else (-1) ** si * xi * 4 ** (ei - 1) for xi, ei, si in zip(x.tolist(), e.tolist(), s.tolist())
    ]
    assert got.tolist() == expected


def test_radix2_format_levels_and_boundaries():
    # A new format is one object: radix-2 FP4 levels 2^(e-7), nearest boundaries 1.5 * 2^(e-7).
    from golden.formats import FP4_RADIX2

    levels = FP4_RADIX2.decode(torch.arange(16, dtype=torch.uint8), 1.0)
    assert levels[:8].tolist() == [0.0] + [2.0 ** (e - 7) for e in range(1, 8)]
    assert levels[8:].tolist() == [0.0] + [-(2.0 ** (e - 7)) for e in range(1, 8)]
    thresholds = [0.5 * 2.0**-6] + [1.5 * 2.0 ** (e - 7) for e in range(1, 7)]
    v = torch.tensor([1.0] + thresholds + [t * (1 - 2**-40) for t in thresholds], dtype=torch.float64)
    codes, scale = FP4_RADIX2.quantize(v)
    assert scale == 1.0
    assert codes.tolist() == [7, *list(range(1, 8)), *list(range(0, 7))]
    x = torch.arange(-8, 16).repeat_interleave(16)
    g = torch.arange(16).repeat(24)
    e, s = g & 7, (g >> 3) & 1
    expected = [
        0 if ei == 0 else (-1) ** si * xi * 2 ** (ei - 1) for xi, ei, si in zip(x.tolist(), e.tolist(), s.tolist())
    ]
    assert FP4_RADIX2.scale(g, x, TORCH_OPS).tolist() == expected
