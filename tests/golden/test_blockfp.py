"""MXFP4 / NVFP4 (SPEC section 7): formats exhaustively, the worked examples verbatim, block_gemm bit-exact.

The cross-checks compare with tests/golden/blockfp_spec_model.py, a scalar exact reading of the SPEC.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from golden.formats import E2M1, E4M3, E8M0, block_decode, block_quantize
from golden.reference import block_gemm

from . import blockfp_spec_model as spec


def ints(t):
    return [int(c) for c in t.flatten().tolist()]


# -- element and scale formats ------------------------------------------------------------------


def test_e2m1_every_code_decodes_as_the_spec_says():
    values = E2M1.decode(torch.arange(16))
    assert values.dtype == torch.float64
    assert [Fraction(v) for v in values.tolist()] == [spec.e2m1_value(c) for c in range(16)]
    assert math.copysign(1.0, float(values[8])) == 1.0  # 0x8 decodes to +0
    assert E2M1.magnitudes.tolist() == [0, 0.5, 1, 1.5, 2, 3, 4, 6]


def test_e2m1_round_trip_and_every_tie():
    codes = torch.arange(16)
    values = E2M1.decode(codes)
    want = [0 if c == 8 else c for c in range(16)]
    assert ints(E2M1.encode(values)) == want
    mags = E2M1.magnitudes
    ties = torch.tensor((mags[:-1] + mags[1:]) / 2)
    # Between codes c and c + 1 the tie goes to the even one.
    even = [c if c % 2 == 0 else c + 1 for c in range(7)]
    assert ints(E2M1.encode(ties)) == even
    assert ints(E2M1.encode(-ties)) == [c | 8 if c else 0 for c in even]
    # Just off the ties: the nearer code.
    below, above = torch.nextafter(ties, torch.zeros_like(ties)), torch.nextafter(ties, ties * 2)
    assert ints(E2M1.encode(below)) == list(range(7))
    assert ints(E2M1.encode(above)) == list(range(1, 8))


def test_e2m1_spec_examples_and_saturation():
    x = torch.tensor([0.25, 0.75, 1.25, 2.5, 5, 7, -0.3, 1e300, -1e300, -0.0, -0.2], dtype=torch.float64)
    assert ints(E2M1.encode(x)) == [0x0, 0x2, 0x2, 0x4, 0x6, 0x7, 0x9, 0x7, 0xF, 0x0, 0x0]


def test_e2m1_random_against_the_spec_model():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(2000) * 4
    assert ints(E2M1.encode(torch.tensor(x))) == [spec.e2m1_encode(v) for v in x]


def test_e4m3_every_code():
    codes = torch.tensor([c for c in range(256) if c & 0x7F != 0x7F])
    values = E4M3.decode(codes)
    assert [Fraction(v) for v in values.tolist()] == [spec.e4m3_value(int(c)) for c in codes]
    assert E4M3.max_value == 448.0 and float(E4M3.magnitudes[1]) == 2.0**-9
    assert bool(E4M3.is_nan(torch.tensor([0x7F, 0xFF])).all()) and not bool(E4M3.is_nan(codes).any())
    # Round trip (0x80, negative zero, becomes 0x00).
    assert ints(E4M3.encode(values)) == [0 if c == 0x80 else int(c) for c in codes]


def test_e4m3_every_tie_between_neighbours_and_saturation():
    mags = E4M3.magnitudes
    ties = torch.tensor((mags[:-1] + mags[1:]) / 2)
    even = [c if c % 2 == 0 else c + 1 for c in range(len(mags) - 1)]
    assert ints(E4M3.encode(ties)) == even
    assert ints(E4M3.encode(-ties)) == [c | 0x80 if c else 0 for c in even]
    big = torch.tensor([448.0, 464.0, 480.0, 1e6, 1e308, -1e308], dtype=torch.float64)
    assert ints(E4M3.encode(big)) == [0x7E, 0x7E, 0x7E, 0x7E, 0x7E, 0xFE]
    # No NaN code is ever produced, whatever the input.
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.standard_normal(5000) * 10.0 ** rng.integers(-5, 6, 5000))
    codes = E4M3.encode(x)
    assert not bool(E4M3.is_nan(codes).any())
    assert ints(codes[:500]) == [spec.e4m3_encode(v) for v in x[:500].tolist()]


def test_e8m0():
    codes = torch.arange(255)
    assert [Fraction(v) for v in E8M0.decode(codes).tolist()] == [spec.e8m0_value(c) for c in range(255)]
    assert ints(E8M0.encode_exponent(torch.tensor([-200, -127, 0, 127, 500]))) == [0, 0, 127, 254, 254]


# -- the SPEC's worked examples, verbatim ----------------------------------------------------------


def test_mxfp4_spec_example():
    v = torch.tensor([0, 1, -3, 0.1, 5.5, 7.9] + [0] * 26, dtype=torch.float64)
    codes, scales, g = block_quantize(v, "mxfp4")
    assert codes.dtype == torch.uint8 and scales.dtype == torch.uint8
    assert g == 1.0 and isinstance(g, float)
    assert ints(scales) == [127]
    assert ints(codes[:6]) == [0x0, 0x2, 0xD, 0x0, 0x7, 0x7]


def test_nvfp4_spec_example():
    v = torch.tensor([[0, 1, -3, 0.1, 5.5, 7.9] + [0] * 10, [0.02] * 16], dtype=torch.float64)
    codes, scales, g = block_quantize(v, "nvfp4")
    assert g == 340.253173828125 and isinstance(g, float)
    assert scales.shape == (2, 1) and ints(scales) == [0x7E, 0x39]
    assert ints(codes[0, :6]) == [0x0, 0x2, 0xC, 0x0, 0x6, 0x7]


# -- quantizer and decoder against the spec model ----------------------------------------------------


def _random_rows(rng, m, k):
    rows = rng.standard_normal((m, k)) * 10.0 ** rng.integers(-3, 4, (m, 1))
    rows[rng.random((m, k)) < 0.1] = 0.0
    return rows


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_quantize_and_decode_match_the_spec_model(fmt):
    rng = np.random.default_rng(3)
    rows = _random_rows(rng, 6, 45)  # 45: partial last block for both block sizes
    rows[2] = 0.0  # zero blocks
    codes, scales, g = block_quantize(torch.tensor(rows), fmt)
    want_codes, want_scales, want_g = spec.quantize_rows(rows.tolist(), fmt)
    assert codes.tolist() == want_codes and scales.tolist() == want_scales and g == want_g
    decoded = block_decode(codes, scales, g, fmt)
    assert decoded.dtype == torch.float64
    assert decoded.tolist() == spec.decode_rows(want_codes, want_scales, want_g, fmt)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_axis_handling(fmt):
    rng = np.random.default_rng(4)
    rows = _random_rows(rng, 5, 37)
    c_rows, s_rows, g_rows = block_quantize(torch.tensor(rows), fmt, axis=1)
    c_cols, s_cols, g_cols = block_quantize(torch.tensor(rows.T.copy()), fmt, axis=0)
    assert torch.equal(c_cols, c_rows.T) and torch.equal(s_cols, s_rows.T) and g_rows == g_cols
    bs = spec.BLOCK_SIZE[fmt]
    assert s_cols.shape == (-(-37 // bs), 5)
    assert torch.equal(block_decode(c_cols, s_cols, g_cols, fmt, axis=0), block_decode(c_rows, s_rows, g_rows, fmt).T)
    # A 3-D tensor blocked along its middle axis is each [i, :, j] fibre blocked on its own
    # (with the one tensor scale of the whole tensor for NVFP4).
    cube = torch.tensor(rng.standard_normal((2, 37, 3)))
    c3, s3, g3 = block_quantize(cube, fmt, axis=1)
    flat = cube.permute(0, 2, 1).reshape(6, 37)
    c2, s2, g2 = block_quantize(flat, fmt, axis=-1)
    assert g3 == g2 and torch.equal(c3.permute(0, 2, 1).reshape(6, 37), c2)
    assert torch.equal(s3.permute(0, 2, 1).reshape(6, -1), s2)
    # float32 and numpy inputs give the codes of their float64 values.
    c32, s32, _ = block_quantize(torch.tensor(rows, dtype=torch.float32), fmt)
    c64, s64, _ = block_quantize(torch.tensor(rows, dtype=torch.float32).double(), fmt)
    assert torch.equal(c32, c64) and torch.equal(s32, s64)
    assert torch.equal(block_quantize(rows, fmt)[0], c_rows)


def test_mxfp4_extreme_exponents_clamp():
    v = torch.tensor(
        [[2.0**-140] + [0.0] * 31, [2.0**200, 1.0] + [0.0] * 30, [3 * 2.0**-125] + [0.0] * 31], dtype=torch.float64
    )
    codes, scales, _ = block_quantize(v.double(), "mxfp4")
    assert ints(scales) == [0, 254, 1]  # 3 * 2^-125 = 1.5 * 2^-124
    want = spec.quantize_rows(v.double().tolist(), "mxfp4")
    assert codes.tolist() == want[0] and scales.tolist() == want[1]
    assert ints(codes[1, :2]) == [0x7, 0x0]


def test_nvfp4_zero_and_tiny_tensors():
    codes, scales, g = block_quantize(torch.zeros(3, 20), "nvfp4")
    assert g == 1.0 and not codes.any() and not scales.any() and scales.shape == (3, 2)
    # A block far below the tensor's largest gets scale 0 and zero codes.
    v = torch.tensor([[1000.0] * 16, [1e-4] + [0.0] * 15], dtype=torch.float64)
    codes, scales, g = block_quantize(v, "nvfp4")
    assert ints(scales[1]) == [0] and not codes[1].any()
    # The tensor scale saturates at FLT_MAX for a tiny tensor.
    codes, scales, g = block_quantize(torch.tensor([1e-300] * 16, dtype=torch.float64), "nvfp4")
    assert g == spec.FLT_MAX
    assert (codes.tolist(), scales.tolist()) == tuple(x[0] for x in spec.quantize_rows([[1e-300] * 16], "nvfp4")[:2])


def test_empty_and_bad_arguments():
    codes, scales, _ = block_quantize(torch.zeros(2, 0), "mxfp4")
    assert codes.shape == (2, 0) and scales.shape == (2, 0)
    with pytest.raises(ValueError, match="'fmt' must be one of"):
        block_quantize(torch.zeros(4), "fp4")
    with pytest.raises(ValueError, match="non-finite"):
        block_quantize(torch.tensor([float("nan")]), "nvfp4")
    with pytest.raises(ValueError, match="out of range"):
        block_quantize(torch.zeros(4), "nvfp4", axis=1)
    with pytest.raises(ValueError, match="0-d"):
        block_quantize(torch.tensor(1.0), "nvfp4")
    with pytest.raises(ValueError, match=r"0\.\.15"):
        block_decode(torch.tensor([16]), torch.tensor([127]), 1.0, "mxfp4")
    with pytest.raises(ValueError, match="NaN e8m0"):
        block_decode(torch.tensor([1]), torch.tensor([255]), 1.0, "mxfp4")
    for nan in (0x7F, 0xFF):
        with pytest.raises(ValueError, match="NaN e4m3"):
            block_decode(torch.tensor([1]), torch.tensor([nan]), 1.0, "nvfp4")
    with pytest.raises(ValueError, match="shape"):
        block_decode(torch.zeros(33, dtype=torch.uint8), torch.tensor([127]), 1.0, "mxfp4")


# -- block_gemm ----------------------------------------------------------------------------------------


def _gemm_bits(a, sa, b, sb, fmt):
    c = block_gemm(torch.tensor(a), torch.tensor(sa), torch.tensor(b), torch.tensor(sb), fmt)
    assert c.dtype == torch.float32 and c.shape == (a.shape[0], b.shape[1])
    return (c.numpy().view(np.uint32)).tolist()


def _check(a, sa, b, sb, fmt):
    want = spec.block_gemm_bits(a.tolist(), sa.tolist(), b.tolist(), sb.tolist(), fmt, n=b.shape[1])
    assert _gemm_bits(a, sa, b, sb, fmt) == want
    return want


def _random_scales(rng, shape, fmt, lo=None, hi=None):
    if fmt == "mxfp4":
        return rng.integers(0 if lo is None else lo, 255 if hi is None else hi, shape).astype(np.uint8)
    codes = rng.integers(0, 0x7F, shape).astype(np.uint8)  # non-negative, non-NaN E4M3
    return codes


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("k", [0, 1, 16, 33, 70])
def test_block_gemm_random_against_the_spec_model(fmt, k):
    rng = np.random.default_rng(k)
    m, n, bs = 3, 4, spec.BLOCK_SIZE[fmt]
    blocks = -(-k // bs)
    a = rng.integers(0, 16, (m, k)).astype(np.uint8)
    b = rng.integers(0, 16, (k, n)).astype(np.uint8)
    if fmt == "mxfp4":
        sa = rng.integers(100, 150, (m, blocks)).astype(np.uint8)
        sb = rng.integers(100, 150, (blocks, n)).astype(np.uint8)
    else:
        sa, sb = _random_scales(rng, (m, blocks), fmt), _random_scales(rng, (blocks, n), fmt)
    _check(a, sa, b, sb, fmt)


def test_block_gemm_mxfp4_extreme_scales():
    rng = np.random.default_rng(7)
    k = 100
    a = rng.integers(0, 16, (6, k)).astype(np.uint8)
    b = rng.integers(0, 16, (k, 5)).astype(np.uint8)
    a[1, :32] = 0  # a zero block
    b[:, 4] = 0x8  # negative zeros only: +0.0 terms
    # Row 0 x column 0: +inf from block 0, -inf from block 1 (inf - inf = NaN).
    a[0, :64], b[:64, 0] = 0x7, 0x7
    a[0, 32:64] = 0xF
    sa = rng.choice(np.array([0, 1, 5, 20, 127, 230, 254], np.uint8), (6, 4))
    sb = rng.choice(np.array([0, 2, 10, 40, 127, 240, 254], np.uint8), (4, 5))
    sa[0, :2], sb[:2, 0] = 254, 254
    bits = np.array(_check(a, sa, b, sb, "mxfp4"), dtype=np.uint32)
    # The cases are really there: overflow to inf, NaN from inf - inf, subnormals and zeros.
    values = bits.view(np.float32)
    assert np.isinf(values).any() and (bits == spec.CANONICAL_NAN).any()
    assert ((bits & 0x7F800000) == 0).any()


def test_block_gemm_mxfp4_term_rounding_edges():
    # One block, one product: P = N_a * N_b; T = P / 4 * 2^(Xa + Xb - 254).
    cases = []
    for code_a, code_b in ((0x7, 0x7), (0x1, 0x1), (0x5, 0x3), (0xF, 0x7), (0x3, 0x5)):
        for xsum in (0, 1, 50, 90, 100, 105, 106, 107, 108, 130, 131, 380, 381, 382, 383, 384, 508):
            cases.append((code_a, code_b, xsum))
    a = np.array([[c[0]] for c in cases], np.uint8)
    sa = np.array([[c[2] // 2] for c in cases], np.uint8)
    b = np.array([[c[1] for c in cases]], np.uint8)
    sb = np.array([[c[2] - c[2] // 2 for c in cases]], np.uint8)
    want = spec.block_gemm_bits(a.tolist(), sa.tolist(), b.tolist(), sb.tolist(), "mxfp4")
    got = _gemm_bits(a, sa, b, sb, "mxfp4")
    assert [got[i][i] for i in range(len(cases))] == [want[i][i] for i in range(len(cases))]


def test_block_gemm_nvfp4_extremes():
    rng = np.random.default_rng(8)
    k = 50
    a = rng.integers(0, 16, (4, k)).astype(np.uint8)
    b = rng.integers(0, 16, (k, 3)).astype(np.uint8)
    a[0] = 0x7
    b[:, 0] = 0x7
    sa = np.array([[0x7E] * 4, [0x01] * 4, [0x00] * 4, [0x7E, 0x01, 0x40, 0x00]], np.uint8)
    sb = np.array([[0x7E, 0x01, 0x38]] * 4, np.uint8)
    _check(a, sa, b, sb, "nvfp4")
    # Accept numpy operands too.
    assert block_gemm(a, sa, b, sb, "nvfp4").dtype == torch.float32


def test_block_gemm_bad_operands():
    a = torch.zeros(2, 40, dtype=torch.uint8)
    b = torch.zeros(40, 3, dtype=torch.uint8)
    sa, sb = torch.zeros(2, 2, dtype=torch.uint8), torch.zeros(2, 3, dtype=torch.uint8)
    assert not block_gemm(a, sa, b, sb, "mxfp4").view(torch.int32).any()  # +0.0
    with pytest.raises(ValueError, match=r"a_scales.*shape"):
        block_gemm(a, sa[:, :1], b, sb, "mxfp4")
    with pytest.raises(ValueError, match=r"b_scales.*shape"):
        block_gemm(a, torch.zeros(2, 3, dtype=torch.uint8), b, sb, "nvfp4")
    with pytest.raises(ValueError, match="inner dimensions"):
        block_gemm(a, sa, b[:39], sb, "mxfp4")
    with pytest.raises(ValueError, match="NaN e8m0"):
        block_gemm(a, sa + 255, b, sb, "mxfp4")
    with pytest.raises(ValueError, match=r"0\.\.15"):
        block_gemm(a + 16, sa, b, sb, "mxfp4")
    with pytest.raises(TypeError, match="integer dtype"):
        block_gemm(a.float(), sa, b, sb, "mxfp4")
