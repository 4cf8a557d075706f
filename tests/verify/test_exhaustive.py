"""hw.fp.fp16_product over every pair of binary16 bit patterns (Verilator C++ harness)."""

import pytest

from verify.exhaustive import build_harness, check_range
from verify.runner import REPO_ROOT


@pytest.mark.slow
def test_fp16_product_all_pairs():
    executable = build_harness(REPO_ROOT / "build" / "exhaustive-test")
    checked, mismatches, first = check_range(executable, 0, 0x10000)
    assert checked == 1 << 32
    assert mismatches == 0, "\n".join(first)
