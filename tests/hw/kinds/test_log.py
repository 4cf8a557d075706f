"""The ``log`` kind: what is special about it (the generic checks are in tests/hw/test_kinds.py)."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal

from hw.kinds import GemmInputError
from hw.kinds.log import GEMM, KIND, PRODUCT_RANGE


def test_product_is_a_shift_of_at_most_12_bits():
    # +-15 x 4^6: an 18-bit signed product, no multiplier.
    assert (PRODUCT_RANGE.lo, PRODUCT_RANGE.hi) == (-61440, 61440)
    m = Module()
    m._MustUse__silence = True  # built only to hold the product's logic, never elaborated
    product = KIND.product(m, Signal(4), Signal(4), {"b_signed": Signal()}, prefix="mul")
    assert product.shape().width == 18


def test_standalone_top_names_its_operands_as_the_spec_does():
    top = KIND.standalone
    assert top.module == "log_mac"
    assert [(port, role) for port, role, _ in top.ports] == [("x", "b"), ("x_signed", "b_signed"), ("g", "a")]


def test_fp4_codes_are_checked():
    with pytest.raises(GemmInputError, match=r"FP4 codes 0\.\.15"):
        GEMM.operand_bits(np.array([[16]]), np.array([[1]]))
    with pytest.raises(GemmInputError, match="FP4 codes"):
        GEMM.operand_bits(np.array([[0.5]]), np.array([[1]]))
    # 0x7: +4^6; 0xF: -4^6; 0x0: zero.
    assert GEMM.reference(np.array([[0x7, 0xF, 0x0]], np.uint8), np.array([[1], [2], [3]], np.int8)).tolist() == [
        [4096 - 8192]
    ]
