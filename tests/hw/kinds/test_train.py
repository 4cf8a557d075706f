"""The ``train`` kind: one array, two GEMMs selected by ``mode`` (generic checks: tests/hw/test_kinds.py)."""

import torch

from hw.kinds import int4, log
from hw.kinds.train import KIND, MODE_INT, MODE_LOG, PRODUCT_RANGE


def test_runs_the_forward_and_backward_gemms_by_mode():
    assert KIND.mode_inputs(int4.GEMM, a_signed=False, b_signed=True) == {
        "mode": MODE_INT,
        "a_signed": 0,
        "b_signed": 1,
    }
    assert KIND.mode_inputs(log.GEMM, b_signed=False)["mode"] == MODE_LOG
    assert KIND.gemm_for("forward") is int4.GEMM and KIND.gemm_for("backward") is log.GEMM


def test_product_range_is_the_union():
    assert (PRODUCT_RANGE.lo, PRODUCT_RANGE.hi) == (log.PRODUCT_RANGE.lo, log.PRODUCT_RANGE.hi)
    assert PRODUCT_RANGE.hi >= int4.PRODUCT_RANGE.hi


def test_golden_products_select_by_mode():
    a, b = torch.tensor([0x7, 0x7]), torch.tensor([3, 3])
    modes = {"mode": torch.tensor([MODE_INT, MODE_LOG]), "a_signed": torch.tensor([1, 1]), "b_signed": True}
    assert KIND.golden_products(a, b, modes).tolist() == [21, 3 * 4096]
