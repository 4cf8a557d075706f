"""golden.fused and the data-dependent exact GEMM split equal their definitions bit for bit,
edge cases included (zeros of both signs, values on and next to every threshold, amax a power
of two, all-zero tensors, non-finite inputs, out-of-range accumulators)."""

import itertools
import math

import pytest
import torch

from golden import fused, pipeline
from golden.formats import FP4_RADIX2, FP4_RADIX4, quantize_pact
from golden.reference import log_gemm
from golden.requant import requant_params, requantize_pact


def _bits(t):
    """Raw bit pattern of a float tensor (distinguishes -0.0 from +0.0)."""
    return t.contiguous().view({torch.float32: torch.int32, torch.float64: torch.int64}[t.dtype])


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


# --- masked -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masked_equals_where_bitwise(dtype):
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(7, 33, generator=gen, dtype=dtype)
    g[0, :5] = torch.tensor([0.0, -0.0, -1e-30, 1e30, -3.0], dtype=dtype)
    mask = torch.rand(7, 33, generator=gen) > 0.4
    ref = torch.where(mask, g, torch.zeros((), dtype=dtype))
    for m in (mask, mask.to(torch.float32)):
        got = fused.masked(g, m)
        assert _same(got, ref)
        assert _same(got.sum(), ref.sum())
    # Non-finite values outside the mask: where drops them, so must masked.
    g[1, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=dtype)
    mask[1, :3] = False
    ref = torch.where(mask, g, torch.zeros((), dtype=dtype))
    assert _same(fused.masked(g, mask.to(torch.float32)), ref)


# --- requantization ---------------------------------------------------------------------------


def _requant_cases():
    gen = torch.Generator().manual_seed(1)
    for r in (1.0, 0.5, 0.013, 3.7e-3, 2.0**-20, 1e-9, 1000.0, 0.999999):
        m0, shift = requant_params(r)
        acc = torch.randint(-(2**22), 2**22, (3000,), generator=gen)
        # On and next to every rounding and saturation boundary: acc * M0 = (2j - 1) * 2^(shift-1).
        for j in range(0, 17):
            edge = -((-(2 * j - 1) << (shift - 1)) // m0)
            acc = torch.cat([acc, torch.tensor([edge - 1, edge, edge + 1])])
        top = -((-15 << shift) // m0)
        acc = torch.cat([acc, torch.tensor([top - 1, top, top + 1, 0, 1, -1])])
        yield acc, m0, shift


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_requantize_pact_equals_integer_definition(dtype):
    for acc, m0, shift in _requant_cases():
        if dtype == torch.float32:
            acc = acc[acc.abs() < 2**24]
        ref = requantize_pact(acc, m0, shift)
        codes, inside, saturated = fused.requantize_pact(acc.to(dtype), m0, shift)
        assert codes.dtype == torch.float64 and inside.dtype == saturated.dtype == torch.float32
        assert torch.equal(codes.to(torch.uint8), ref[0]), (m0, shift)
        assert torch.equal(inside.bool(), ref[1]) and torch.equal(saturated.bool(), ref[2])


def test_requantize_pact_large_accumulators_and_errors():
    m0, shift = requant_params(1e-9)
    # |acc| * M0 near 2^53 and beyond: the float64 path must hand over to int64.
    acc = torch.tensor([2**38 - 1, -(2**38), 2**37 + 12345, 0, 5], dtype=torch.int64)
    ref = requantize_pact(acc, m0, shift)
    codes, inside, saturated = fused.requantize_pact(acc.to(torch.float64), m0, shift)
    assert torch.equal(codes.to(torch.uint8), ref[0])
    assert torch.equal(inside.bool(), ref[1]) and torch.equal(saturated.bool(), ref[2])
    with pytest.raises(ValueError):
        fused.requantize_pact(torch.tensor([2.0**45]), m0, shift)
    empty = fused.requantize_pact(torch.zeros(0), m0, shift)
    assert all(t.numel() == 0 for t in empty)


# --- PACT float path --------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [4.0, 1.0, 0.3, 6.123])
def test_pact_quantize_equals_quantize_pact(alpha):
    a = float(torch.tensor(alpha, dtype=torch.float32))
    gen = torch.Generator().manual_seed(2)
    y = torch.randn(5000, generator=gen) * a
    edges = torch.tensor([(j - 0.5) * a / 15 for j in range(1, 16)] + [0.0, -0.0, a, 2 * a, -a], dtype=torch.float32)
    y = torch.cat(
        [
            y,
            edges,
            torch.nextafter(edges, torch.full_like(edges, 1e9)),
            torch.nextafter(edges, torch.full_like(edges, -1e9)),
        ]
    )
    codes, inside, saturated = fused.pact_quantize(y, a)
    assert torch.equal(codes.to(torch.uint8), quantize_pact(y, a))
    assert torch.equal(inside.bool(), (y > 0) & (y < a)) and torch.equal(saturated.bool(), y >= a)


def test_pact_quantize_rejects_non_finite_like_the_definition():
    with pytest.raises(ValueError, match="non-finite"):
        fused.pact_quantize(torch.tensor([1.0, float("nan")]), 4.0)


# --- FP4 encoding by table lookup -------------------------------------------------------------


def _fp4_inputs(gen, trial):
    scale = 10.0 ** (torch.rand(1, generator=gen).item() * 40 - 30)
    v = (torch.randn(700, generator=gen) * scale * torch.exp(3 * torch.randn(700, generator=gen))).float()
    amax = float(v.abs().max())
    k = math.frexp(amax)[1]
    levels = [0.5 * 4.0**-6] + [2.5 * 4.0 ** (e - 7) for e in range(1, 7)] + [4.0 ** (e - 7) for e in range(1, 8)]
    b = torch.tensor([t * 2.0 ** (k - p) for t in levels for p in (0, 1)], dtype=torch.float32)
    b = b[b.abs() <= amax]
    v = torch.cat([v, b, -b, torch.nextafter(b, torch.zeros_like(b)), torch.zeros(3), -torch.zeros(2)])
    if trial % 3 == 0:  # amax exactly a power of two
        v[0] = 2.0 ** (k - 1) if trial % 2 else -(2.0**k)
    return v


@pytest.mark.parametrize("fmt,rounding", [(FP4_RADIX4, "nearest"), (FP4_RADIX4, "log"), (FP4_RADIX2, "nearest")])
def test_fp4_encode_equals_format_quantizer(fmt, rounding):
    gen = torch.Generator().manual_seed(3)
    hits = 0
    for trial in range(40):
        v = _fp4_inputs(gen, trial)
        amax = float(v.abs().max())
        phases = range(fmt.phases)
        out = fused.fp4_encode(v, amax, 1.0, phases, fmt, rounding=rounding)
        if out is None:
            continue
        hits += 1
        for p, (codes, scale) in out.items():
            ref, ref_scale = fmt.quantize(v, phase=p, rounding=rounding)
            assert torch.equal(codes, ref) and scale == ref_scale, (trial, p)
    assert hits >= 35  # only thresholds among float32 subnormals are refused


def test_fp4_encode_integer_counts_and_refusals():
    gen = torch.Generator().manual_seed(4)
    ints = torch.randint(-(2**23), 2**23, (3000,), generator=gen)
    ints[:6] = torch.tensor([0, 1, -1, 2**22, 3, 7])
    counts = ints.to(torch.float32)
    out = fused.fp4_encode(counts, float(counts.abs().max()), 0.0123, (0, 1), FP4_RADIX4)
    for p, (codes, scale) in out.items():
        ref, ref_scale = FP4_RADIX4.quantize(ints, phase=p, unit=0.0123)
        assert torch.equal(codes, ref) and scale == ref_scale
    # Ties towards zero put values of two codes in one bucket: the table refuses.
    assert fused.fp4_encode(counts, float(counts.abs().max()), 1.0, (0,), FP4_RADIX4, ties="zero") is None
    assert fused.fp4_encode(counts.double(), 1.0, 1.0, (0,), FP4_RADIX4) is None


@pytest.mark.parametrize("ties", ["away", "zero"])
def test_quantize_counts_all_paths_equal_format(ties):
    gen = torch.Generator().manual_seed(5)
    for trial in range(12):
        v = _fp4_inputs(gen, trial)
        out = pipeline.quantize_counts(v, float(v.abs().max()), 1.0, (0, 1), FP4_RADIX4, ties=ties)
        for p, (codes, scale) in out.items():
            ref, ref_scale = FP4_RADIX4.quantize(v, phase=p, ties=ties)
            assert torch.equal(codes, ref) and scale == ref_scale
    zero = pipeline.quantize_counts(torch.zeros(4, 3), 0.0, 0.5, (0, 1))
    assert all(torch.equal(c, torch.zeros(4, 3, dtype=torch.uint8)) and s == 0.5 for c, s in zero.values())


# --- exact log GEMMs split by exponent ranges taken from the data --------------------------------


def test_data_groups_are_minimal_and_exact():
    gen = torch.Generator().manual_seed(6)
    k = 40000
    # Gradient-like codes: mostly small exponents, a few large.
    e = torch.multinomial(torch.tensor([60.0, 1, 1, 2, 5, 15, 12, 4]), 6 * k, replacement=True, generator=gen)
    codes = (e | (torch.randint(0, 2, (6 * k,), generator=gen) << 3) * (e > 0)).to(torch.uint8).reshape(6, k)
    x = torch.randint(0, 16, (k, 5), generator=gen)
    groups = pipeline._data_groups(codes, (1,), 15, FP4_RADIX4)
    worst = pipeline._worst_case_groups(k, 15, FP4_RADIX4)
    assert groups is not None and len(groups) < len(worst)
    assert groups[0][0] == 0 and groups[-1][1] == 7 and all(a[1] == b[0] for a, b in itertools.pairwise(groups))
    got = pipeline.log_matmul(codes, x.float(), 15)
    assert torch.equal(got.to(torch.int64), log_gemm(codes, x, x_signed=False))
    # All-top-level codes: the data cannot beat the worst case, the result is still exact.
    top = torch.full((3, k), 7, dtype=torch.uint8)
    assert torch.equal(pipeline.log_matmul(top, x.float(), 15).to(torch.int64), log_gemm(top, x, x_signed=False))
