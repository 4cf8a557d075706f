"""The ``fp16`` kind: the floating-point baseline (the generic checks are in tests/hw/test_kinds.py)."""

import numpy as np
import pytest
import torch

from hw.kinds import GemmInputError, baseline_kind
from hw.kinds.fp16 import GEMM, KIND


def test_it_is_the_baseline_with_a_binary32_accumulator():
    assert baseline_kind() is KIND
    assert KIND.is_float and KIND.max_k(32) is None and KIND.acc_width_for(10**9) == 32
    with pytest.raises(ValueError, match="binary32 accumulator is 32 bits"):
        KIND.check_acc_width("fp16_array", 24, 1)
    assert KIND.fpga.clock_div == 2 and KIND.fpga.hard_multipliers


def test_results_compare_as_bit_patterns():
    a = np.array([[np.inf, 0.0]], np.float16)
    b = np.array([[0.0], [1.0]], np.float16)
    c = GEMM.reference(a, b)
    assert GEMM.result_bits(c).tolist() == [[0x7FC00000]]  # inf * 0: the canonical NaN
    assert GEMM.decode(np.array([[0x7FC00000]], np.uint64), 32).view(np.uint32).tolist() == [[0x7FC00000]]


def test_operands_must_be_float16():
    with pytest.raises(GemmInputError, match="must be float16"):
        GEMM.operand_bits(np.ones((1, 1), np.float32), np.ones((1, 1), np.float16))


def test_zero_products_skipped_exactly():
    """The lean array leaves the accumulator unclocked for x * (+-0) with x finite: results stay exact.

    The cases the skip rule must respect: -0 accumulated then +0 added
    (-0 + +0 = +0: no skip while the accumulator is -0), zero times inf or
    NaN (NaN), a zero first product after clear (loaded, sign kept), and half
    of all operands zero.
    """
    from golden.reference import fp16_gemm
    from tests.hw.test_array import simulate

    rng = np.random.default_rng(5)
    m, k, n = 5, 7, 3
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    a[rng.random((m, k)) < 0.5] = 0
    b[rng.random((k, n)) < 0.3] = np.float16(-0.0)
    a[0, :] = np.array([-0.0, -0.0, 0.0, 1.0, -0.0, 0.0, 2.0], np.float16)
    b[:, 0] = np.array([1.0, 1.0, 1.0, 0.0, 3.0, -0.0, -0.0], np.float16)  # -0, -0, +0, +0, -0, -0, -0
    a[1, 2], b[2, 1] = np.float16(np.inf), np.float16(0.0)  # inf * 0: NaN
    a[2, 4], b[4, 2] = np.float16(np.nan), np.float16(0.0)  # NaN * 0: NaN
    raw, _ = simulate("fp16", a.view(np.uint16), b.view(np.uint16), rows=2, cols=2, modes={})
    expected = fp16_gemm(torch.from_numpy(a), torch.from_numpy(b)).numpy().view(np.uint32)
    assert np.array_equal(raw.astype(np.uint32), expected)
    assert expected[0, 0] == 0x0000_0000  # +0 after -0 + +0
