"""The quantizers run on every available device and give the same codes as on the CPU."""

import pytest
import torch

from golden.formats import fp4_decode, fp4_quantize, quantize_input, quantize_pact, quantize_weight, sawb_step
from golden.reference import int_gemm, log_gemm

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_same_codes_on_device(device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 33, generator=g)
    on = x.to(device)
    assert torch.equal(quantize_input(on.sigmoid()).cpu(), quantize_input(x.sigmoid()))
    step = sawb_step(x)
    assert sawb_step(on) == step
    assert torch.equal(quantize_weight(on, step).cpu(), quantize_weight(x, step))
    assert torch.equal(quantize_pact(on, 1.5).cpu(), quantize_pact(x, 1.5))
    for phase in (0, 1):
        codes, scale = fp4_quantize(on * 1e-3, phase=phase)
        ref_codes, ref_scale = fp4_quantize(x * 1e-3, phase=phase)
        assert codes.device.type == device and torch.equal(codes.cpu(), ref_codes) and scale == ref_scale
        assert torch.equal(fp4_decode(codes, scale, phase=phase).cpu(), fp4_decode(ref_codes, ref_scale, phase=phase))
    w = quantize_weight(x, step)
    a = quantize_pact(x, 1.5)
    assert torch.equal(int_gemm(a.to(device).T, w.to(device), a_signed=False).cpu(), int_gemm(a.T, w, a_signed=False))
    gc, _ = fp4_quantize(x)
    assert torch.equal(log_gemm(gc.to(device), w.to(device).T).cpu(), log_gemm(gc, w.T))
