"""Capture float operands: the unquantized values each recorded GEMM quantized (golden.capture)."""

import numpy as np
import pytest
import torch

from golden.capture import TensorCapture, verify_capture
from golden.formats import quantize_input, quantize_pact, quantize_weight
from tests.golden.capture_run import captured_lenet_run


def _capture(tmp_path, **kwargs):
    return captured_lenet_run(tmp_path, "ibm4-full", **kwargs)


def test_float_operands_match_the_codes(tmp_path):
    path, records = _capture(tmp_path)
    assert verify_capture(path) == len(records)  # integer records unchanged
    gemms = [r for r in records if r["op"] in ("fwd", "dx", "dw")]
    assert gemms
    for r in gemms:
        assert r["a_float"].dtype == np.float32 and r["b_float"].dtype == np.float32
        assert r["a_float"].shape == r["a"].shape and r["b_float"].shape == r["b"].shape
        assert np.isfinite(r["a_float"]).all() and np.isfinite(r["b_float"]).all()
    by = {(r["layer"], r["op"]): r for r in gemms}
    alphas = {r["producer"]: r["alpha"] for r in records if r["op"] == "requant"}
    order = sorted({r["layer"] for r in gemms}, key=int)
    for n, layer in enumerate(order):
        fwd, dw = by[layer, "fwd"], by[layer, "dw"]
        # weights: SAWB INT4 of the float master weights, exactly
        w = torch.from_numpy(fwd["b_float"].T.astype(np.float64))
        assert torch.equal(
            quantize_weight(w, fwd["scale_b"]).to(torch.int64), torch.from_numpy(fwd["b"].T.astype(np.int64))
        ), layer
        a = torch.from_numpy(fwd["a_float"].astype(np.float64))
        if n == 0:  # the image layer: INT4 input quantization of the float pixels, exactly
            #             (im2col padding is 0 in both, while a real 0.0 pixel is code -8)
            codes = quantize_input(a).to(torch.int64).numpy()
            padding = (fwd["a_float"] == 0) & (fwd["a"] == 0)
            assert np.array_equal(codes[~padding], fwd["a"][~padding]) and padding.mean() < 0.5
        else:  # PACT of the float pre-activation; the integer requantization rounds the exact
            #             accumulator, so a code may differ by one where float rounding lands on a boundary
            codes = quantize_pact(a, alphas[order[n - 1]]).to(torch.int64).numpy()
            diff = codes - fwd["a"].astype(np.int64)
            assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 0.01, layer
        # dW multiplies the same activation, and dY^T
        assert np.array_equal(dw["b_float"], fwd["a_float"])
        if (layer, "dx") in by:
            dx = by[layer, "dx"]
            assert np.array_equal(dx["a_float"].T, dw["a_float"])
            assert np.array_equal(dx["b_float"], fwd["b_float"].T)
        for g in (dw,) + ((by[layer, "dx"],) if (layer, "dx") in by else ()):
            # an FP4 code's sign bit is the float gradient's sign
            negative = (g["a"] & 8) != 0
            assert (g["a_float"][negative] < 0).all() and (g["a_float"][((g["a"] & 7) != 0) & ~negative] > 0).all()


def test_floats_can_be_left_out(tmp_path):
    path, records = _capture(tmp_path, floats=False)
    assert verify_capture(path) == len(records)
    assert not any("a_float" in r or "b_float" in r for r in records)
    with pytest.raises(TypeError, match="floats"):
        TensorCapture([0], floats=1)
