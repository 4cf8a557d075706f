"""The ``nvfp4`` kind (generic checks in tests/hw/test_kinds.py): term rounding, multi-block GEMMs, extremes."""

import numpy as np
import pytest

from hw.kinds import GemmInputError
from hw.kinds.nvfp4 import GEMM, KIND

from .blockfp_cases import check_gemm, exact_terms, simulate_terms


def test_widths():
    assert KIND.block_sum_width == 13  # |P| <= 16 * 144 = 2304
    assert KIND.scale_offset == 22 and KIND.scale_significand_bits == 8 and KIND.scale_exponent_bits == 5


def test_term_rounding():
    # P * (sig_a * sig_b) with every exponent sum 2..30 and both signs: exact in binary32 (21 bits).
    rng = np.random.default_rng(3)
    values = rng.integers(-2304, 2305, 3000) * rng.integers(0, 226, 3000)
    exponents = rng.integers(2, 31, 3000)
    negates = rng.integers(0, 2, 3000)
    got = simulate_terms(values, exponents, negates, value_bits=23, exponent_bits=5, offset=KIND.scale_offset)
    assert np.array_equal(got, exact_terms(values, exponents, negates, KIND.scale_offset))


def test_multi_block_gemm_with_extreme_scales():
    rng = np.random.default_rng(21)
    m, k, n = 3, 40, 4  # 3 blocks, the last one partial
    inputs = GEMM.random_inputs(rng, m, k, n)
    inputs["a_scales"][0], inputs["b_scales"][:, 0] = 0x7E, 0x7E  # 448 * 448
    inputs["a_scales"][1], inputs["b_scales"][:, 1] = 0x01, 0x81  # 2^-9 * -2^-9
    inputs["a_scales"][2, 1] = 0x80  # -0
    inputs["a"][2, :16] = 0  # a zero block
    check_gemm(KIND, inputs)


def test_k_zero_and_back_to_back_tiles():
    rng = np.random.default_rng(22)
    check_gemm(KIND, GEMM.random_inputs(rng, 3, 0, 4))
    check_gemm(KIND, GEMM.random_inputs(rng, 5, 17, 7))


def test_operand_checks():
    a, b = np.zeros((2, 20), np.uint8), np.zeros((20, 3), np.uint8)
    sa, sb = np.full((2, 2), 0x38, np.uint8), np.full((2, 3), 0x38, np.uint8)
    for nan in (0x7F, 0xFF):
        with pytest.raises(GemmInputError, match=f"NaN e4m3 code {nan:#04x}"):
            GEMM.operand_bits(a, b, a_scales=sa, b_scales=np.full((2, 3), nan, np.uint8))
    with pytest.raises(GemmInputError, match="B's scales must be 2 x 3"):
        GEMM.operand_bits(a, b, a_scales=sa, b_scales=sb[:1])
