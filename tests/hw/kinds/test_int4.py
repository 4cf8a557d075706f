"""The ``int4`` kind: what is special about it (the generic checks are in tests/hw/test_kinds.py)."""

import numpy as np
import pytest

from hw.arith import max_safe_k
from hw.kinds import GemmInputError
from hw.kinds.int4 import GEMM, KIND, PRODUCT_RANGE, STANDALONE_PRODUCT_RANGE


def test_product_ranges():
    # UINT4 15 x UINT4 15 = 225 in the array; the standalone top's b is INT4 only.
    assert (PRODUCT_RANGE.lo, PRODUCT_RANGE.hi) == (-120, 225)
    assert (STANDALONE_PRODUCT_RANGE.lo, STANDALONE_PRODUCT_RANGE.hi) == (-120, 105)
    assert max_safe_k(STANDALONE_PRODUCT_RANGE, 24) == 69905  # the manifest's int4_mac bound


def test_standalone_top_is_the_spec_one():
    top = KIND.standalone
    assert top.module == "int4_mac"
    assert [port for port, _, _ in top.ports] == ["a", "b", "a_signed"]
    assert top.fixed_modes == {"b_signed": True} and top.defaults["acc_width"] == 24


def test_accumulator_width_grows_with_k():
    assert KIND.acc_width_for(1) == 24
    assert KIND.acc_width_for(10**6) > 24
    with pytest.raises(GemmInputError, match="results are int64"):
        KIND.acc_width_for(2**62)


def test_operands_follow_the_signedness():
    a = np.array([[15, 0]])
    b = np.array([[1], [2]])
    with pytest.raises(GemmInputError, match="outside INT4 range"):
        GEMM.operand_bits(a, b)
    a_bits, _ = GEMM.operand_bits(a, b, a_signed=False)
    assert a_bits.tolist() == [[15, 0]]
    assert GEMM.reference(a, b, a_signed=False).tolist() == [[15]]
