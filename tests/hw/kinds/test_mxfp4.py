"""The ``mxfp4`` kind (generic checks in tests/hw/test_kinds.py): term rounding, multi-block GEMMs, extremes."""

import numpy as np
import pytest

from hw.kinds import GemmInputError
from hw.kinds.mxfp4 import GEMM, KIND

from .blockfp_cases import check_gemm, exact_terms, simulate_terms


def test_widths():
    assert KIND.block_sum_width == 14  # |P| <= 32 * 144 = 4608
    assert KIND.a_width == KIND.b_width == 12 and KIND.is_float
    assert KIND.standalone.module == "mxfp4_mac" and [w for _, _, w in KIND.standalone.ports] == [12, 12]


def test_term_rounding_over_every_exponent_sum():
    # Every Xa + Xb (0..508) with block sums at the extremes and around rounding boundaries.
    sums = np.array([1, -1, 3, 4607, -4608, 4608, 4095, 2049, -2051, 12, 144, -4097])
    exponents = np.repeat(np.arange(509), len(sums))
    values = np.tile(sums, 509)
    negates = np.zeros_like(values)
    got = simulate_terms(values, exponents, negates, value_bits=15, exponent_bits=9, offset=KIND.scale_offset)
    want = exact_terms(values, exponents, negates, KIND.scale_offset)
    assert np.array_equal(got, want)
    # The cases are there: inf, subnormals and underflow to (signed) zero.
    assert (want == 0x7F800000).any() and ((want & 0x7F800000) == 0).any() and (want == 0x80000000).any()


def test_term_rounding_every_block_sum_near_the_subnormal_edge():
    values = np.tile(np.arange(-4608, 4609), 4)
    exponents = np.repeat([84, 100, 107, 130], 9217)
    negates = np.zeros_like(values)
    got = simulate_terms(values, exponents, negates, value_bits=15, exponent_bits=9, offset=KIND.scale_offset)
    assert np.array_equal(got, exact_terms(values, exponents, negates, KIND.scale_offset))


def test_multi_block_gemm_with_extreme_scales():
    rng = np.random.default_rng(11)
    m, k, n = 3, 70, 4  # 3 blocks, the last one partial
    inputs = GEMM.random_inputs(rng, m, k, n)
    a_scales, b_scales = inputs["a_scales"], inputs["b_scales"]
    inputs["a"][0, :64], inputs["b"][:64, 0] = 0x7, 0x7
    inputs["a"][0, 32:64] = 0xF  # +inf then -inf: NaN
    a_scales[0, :2], b_scales[:2, 0] = 254, 254
    inputs["a"][1, 32:64] = 0  # a zero block
    a_scales[2], b_scales[:, 3] = 0, 1  # underflow
    bits = check_gemm(KIND, inputs)
    assert (bits == 0x7FC00000).any()


def test_k_zero_and_back_to_back_tiles():
    rng = np.random.default_rng(12)
    check_gemm(KIND, GEMM.random_inputs(rng, 3, 0, 4))
    # 5 x 33 x 7 on 2 x 3: many tiles of 64 cycles back to back.
    check_gemm(KIND, GEMM.random_inputs(rng, 5, 33, 7))


def test_operand_checks():
    a, b = np.zeros((2, 40), np.uint8), np.zeros((40, 3), np.uint8)
    sa, sb = np.full((2, 2), 127, np.uint8), np.full((2, 3), 127, np.uint8)
    a_bits, b_bits = GEMM.operand_bits(a, b, a_scales=sa, b_scales=sb)
    assert a_bits.shape == (2, 64) and b_bits.shape == (64, 3)  # K padded to whole blocks
    assert int(a_bits[0, 63]) == 127 << 4
    with pytest.raises(GemmInputError, match="A's scales must be 2 x 2"):
        GEMM.operand_bits(a, b, a_scales=sa[:, :1], b_scales=sb)
    with pytest.raises(GemmInputError, match="NaN e8m0 code 0xff"):
        GEMM.operand_bits(a, b, a_scales=sa, b_scales=sb + 128)
    with pytest.raises(GemmInputError, match=r"outside 0\.\.15"):
        GEMM.operand_bits(a + 16, b, a_scales=sa, b_scales=sb)
    with pytest.raises(GemmInputError, match="integer"):
        GEMM.operand_bits(a.astype(np.float32), b, a_scales=sa, b_scales=sb)
