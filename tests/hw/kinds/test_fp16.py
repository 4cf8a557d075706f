"""The ``fp16`` kind: the floating-point baseline (the generic checks are in tests/hw/test_kinds.py)."""

import numpy as np
import pytest

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
