"""The quantized layers train with exactly the integer pipeline: checked against an explicit
re-implementation built from golden.formats, golden.reference and golden.requant only."""

import pytest
import torch
from torch import nn

from golden import pipeline
from golden.capture import verify_capture
from golden.formats import (
    FP4_RADIX2,
    FP4_RADIX4,
    fp4_quantize,
    quantize_input,
    quantize_pact,
    quantize_weight,
    sawb_step,
)
from golden.layers import PACT, QConv2d, QLinear, QuantConfig, convert
from golden.quantized import state_of
from golden.recipes import get_recipe
from golden.reference import int_gemm, log_gemm
from golden.requant import pact_masks, requant_params, requantize, requantize_pact
from tests.golden.capture_run import captured_lenet_run

# --- requantization -------------------------------------------------------------------------


@pytest.mark.parametrize("r", [1.0, 0.5, 0.75, 1e-3, 0.0123456, 3.999, 2.0**-20, 1000.0])
def test_requant_params_normalized_and_accurate(r):
    m0, shift = requant_params(r)
    assert 2**15 <= m0 < 2**16 and 1 <= shift <= 62
    assert abs(m0 * 2.0**-shift - r) <= r * 2.0**-16


def test_requant_params_carry_and_errors():
    # f * 2^16 rounds up to 2^16: M0 renormalizes.
    m0, shift = requant_params(1.0 - 2.0**-20)
    assert (m0, shift) == (2**15, 15)
    for bad in (0.0, -1.0, float("nan"), float("inf"), 2.0**20):
        with pytest.raises(ValueError):
            requant_params(bad)


def test_requantize_rounds_half_up_and_clamps():
    m0, shift = 1 << 15, 16  # multiplier 0.5
    acc = torch.tensor([-3, -1, 0, 1, 2, 3, 5, 29, 30, 31, 1000])
    codes = requantize(acc, m0, shift)
    assert codes.tolist() == [0, 0, 0, 1, 1, 2, 3, 15, 15, 15, 15]
    inside, sat = pact_masks(acc, m0, shift)
    assert inside.tolist() == [a > 0 and a * 0.5 < 15 for a in acc.tolist()]
    assert sat.tolist() == [a * 0.5 >= 15 for a in acc.tolist()]
    c2, i2, s2 = requantize_pact(acc, m0, shift)
    assert torch.equal(c2, codes) and torch.equal(i2, inside) and torch.equal(s2, sat)
    with pytest.raises(TypeError):
        requantize(acc.float(), m0, shift)
    with pytest.raises(ValueError):
        requantize(torch.tensor([1 << 45]), m0, shift)


# --- fast paths equal the definitions ---------------------------------------------------------


def test_quantize_grad_fast_path_equals_fp4_quantize():
    gen = torch.Generator().manual_seed(1)
    fmt = FP4_RADIX4
    levels = [0.5 * 4.0**-6] + [2.5 * 4.0 ** (e - 7) for e in range(1, 7)]
    for trial in range(60):
        scale = 10.0 ** (torch.rand(1, generator=gen).item() * 30 - 25)
        v = (torch.randn(500, generator=gen) * scale * torch.exp(3 * torch.randn(500, generator=gen))).float()
        if trial % 4 == 0:  # exact boundaries and their neighbours
            b = torch.tensor([*levels, 1.0, 0.5, 0.25], dtype=torch.float32) * 2.0 ** (trial % 9 - 4)
            v = torch.cat([b, -b, torch.nextafter(b, torch.zeros_like(b)), v[:100]])
        unit = 1.0
        if trial % 3 == 0:
            v, unit = torch.randint(-(2**23), 2**23, (400,), generator=gen), 0.0123
            v[:7] = torch.tensor([0, 1, -1, 2**22, 3, 7, 2**10])
        for rounding in ("nearest", "log"):
            for ties in ("away", "zero"):
                out = pipeline.quantize_grad(v, unit, (0, 1), fmt, rounding=rounding, ties=ties)
                for p, (codes, s) in out.items():
                    ref_codes, ref_s = fmt.quantize(v, phase=p, unit=unit, rounding=rounding, ties=ties)
                    assert torch.equal(codes, ref_codes) and s == ref_s, (trial, rounding, ties, p)


def test_quantize_grad_stochastic_and_radix2_use_the_format():
    v = torch.randn(300, generator=torch.Generator().manual_seed(2))
    out = pipeline.quantize_grad(v, 1.0, (0,), FP4_RADIX2, rounding="stochastic", seed=77)
    ref = FP4_RADIX2.quantize(v, phase=0, rounding="stochastic", seed=77)
    assert torch.equal(out[0][0], ref[0]) and out[0][1] == ref[1]


def test_quantize_grad_rejects_non_finite():
    with pytest.raises((FloatingPointError, ValueError)):
        pipeline.quantize_grad(torch.tensor([1.0, float("nan")]), 1.0, (0,))


def test_quantize_weight_sawb_equals_definitions():
    gen = torch.Generator().manual_seed(3)
    for shape in [(7,), (16, 9), (6, 1, 5, 5)]:
        w = torch.randn(shape, generator=gen) * 0.1
        codes, step = pipeline.quantize_weight_sawb(w, (12.68, 12.80))
        assert step == sawb_step(w, (12.68, 12.80))
        assert torch.equal(codes.to(torch.int8), quantize_weight(w, step))
    with pytest.raises(FloatingPointError):
        pipeline.quantize_weight_sawb(torch.tensor([1.0, float("inf")]))


@pytest.mark.parametrize("m,k,n,signed", [(5, 7, 3, True), (40, 30000, 5, False), (3, 2000, 4, True)])
def test_log_matmul_equals_reference(m, k, n, signed):
    gen = torch.Generator().manual_seed(k)
    g = torch.randint(0, 16, (m, k), dtype=torch.uint8, generator=gen)
    lo, hi = (-8, 8) if signed else (0, 16)
    x = torch.randint(lo, hi, (k, n), generator=gen)
    got = pipeline.log_matmul(g, x.float(), 8 if signed else 15)
    assert torch.equal(got.to(torch.int64), log_gemm(g, x, x_signed=signed))


def test_forward_gemm_equals_reference_and_checks_bound():
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(0, 16, (9, 300), generator=gen)
    w = torch.randint(-7, 8, (11, 300), generator=gen)
    got = pipeline.forward_gemm(x.float(), w.float(), 15)
    assert got.dtype == torch.float32
    assert torch.equal(got.to(torch.int64), int_gemm(x, w.t(), a_signed=False, b_signed=True))
    with pytest.raises(OverflowError):
        pipeline.exact_matmul(torch.zeros(1, 4), torch.zeros(4, 1), 2.0**52, 2.0)


# --- layers: forward and backward against the explicit pipeline ------------------------------


def _mlp(config):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))
    return convert(model, config)


def _explicit_mlp_step(model, x, y):
    """The hardware pipeline written out with the reference functions only."""
    cfg = model[1].config
    l1, p1, l2, p2, l3 = model[1], model[2], model[3], model[4], model[5]
    # forward
    x1 = quantize_input(x.flatten(1)).to(torch.int64)
    s1 = sawb_step(l1.weight, cfg.sawb_c)
    w1 = quantize_weight(l1.weight, s1).to(torch.int64)
    u1 = s1 / 15
    acc1 = int_gemm(x1, w1.t(), a_signed=True, b_signed=True) + torch.round(l1.bias.detach().double() / u1).to(
        torch.int64
    )
    a1 = float(p1.alpha.detach()) / 15
    m0, sh = requant_params(u1 / a1)
    x2 = requantize(acc1, m0, sh).to(torch.int64)
    in1, _sat1 = pact_masks(acc1, m0, sh)
    s2 = sawb_step(l2.weight, cfg.sawb_c)
    w2 = quantize_weight(l2.weight, s2).to(torch.int64)
    u2 = a1 * s2
    acc2 = int_gemm(x2, w2.t(), a_signed=False, b_signed=True) + torch.round(l2.bias.detach().double() / u2).to(
        torch.int64
    )
    a2 = float(p2.alpha.detach()) / 15
    m0b, shb = requant_params(u2 / a2)
    x3 = requantize(acc2, m0b, shb)
    in2, sat2 = pact_masks(acc2, m0b, shb)
    z2 = (x3.double() * a2).float().requires_grad_(True)
    loss = nn.functional.cross_entropy(l3(z2), y)
    (gz2,) = torch.autograd.grad(loss, z2)
    # backward through PACT 2 and layer 2 (float gradient from the FP32 classifier)
    gy2 = torch.where(in2, gz2, torch.zeros(()))
    c0, sg0 = fp4_quantize(gy2, phase=0)
    c1, sg1 = fp4_quantize(gy2, phase=1)
    dx2 = log_gemm(c0, w2, x_signed=True)
    dx2_unit = sg0 * 4.0**-6 * s2
    dw2 = log_gemm(c1.t().contiguous(), x2, x_signed=False)
    grad_w2 = (dw2.double() * (sg1 * 2.0**-1 * 4.0**-6 * a1)).float()
    # PACT 1 on the integer dX accumulator, then layer 1's dW (no dX: image input)
    dacc1 = torch.where(in1, dx2, torch.zeros((), dtype=torch.int64))
    d0, t0 = fp4_quantize(dacc1, phase=1, unit=dx2_unit)
    dw1 = log_gemm(d0.t().contiguous(), x1, x_signed=True)
    grad_w1 = (dw1.double() * (t0 * 2.0**-1 * 4.0**-6 / 15)).float()
    return {
        "x3": x3,
        "loss": loss.detach(),
        "grad_w1": grad_w1,
        "grad_w2": grad_w2,
        "grad_alpha2": torch.where(sat2, gz2, torch.zeros(())).sum(),
    }


def test_qlinear_chain_matches_explicit_pipeline_bit_for_bit():
    model = _mlp(QuantConfig(keep_first=False, pact_alpha=8.0))
    assert [type(m) for m in model] == [type(model[0]), QLinear, PACT, QLinear, PACT, nn.Linear]
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(6, 3, 4, generator=gen)
    y = torch.randint(0, 3, (6,), generator=gen)
    want = _explicit_mlp_step(model, x, y)
    codes = state_of(model[4](model[3](model[2](model[1](model[0](x)))))).codes
    assert torch.equal(codes.to(torch.uint8), want["x3"])
    out = model(x)
    loss = nn.functional.cross_entropy(out, y)
    loss.backward()
    assert torch.equal(loss.detach(), want["loss"])
    assert torch.equal(model[1].weight.grad, want["grad_w1"])
    assert torch.equal(model[3].weight.grad, want["grad_w2"])
    assert torch.equal(model[4].alpha.grad.reshape(()), want["grad_alpha2"])
    assert model[1].inexact_grad_steps == 0


def test_qconv_matches_explicit_im2col_pipeline():
    cfg = QuantConfig()
    torch.manual_seed(1)
    conv = QConv2d(3, 5, 3, stride=2, padding=1, bias=False, config=cfg, input_mode="image", name="c")
    x = torch.rand(2, 3, 9, 9)
    y = conv(x)
    gy = torch.randn_like(y)
    y.backward(gy)
    xc = quantize_input(x).to(torch.int64)
    cols = nn.functional.unfold(xc.double(), 3, padding=1, stride=2).to(torch.int64)  # B x K x L
    xm = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    s = sawb_step(conv.weight)
    wm = quantize_weight(conv.weight, s).to(torch.int64).reshape(5, -1)
    acc = int_gemm(xm, wm.t())
    want_y = (acc.double() * (s / 15)).float().reshape(2, 25, 5).transpose(1, 2).reshape(2, 5, 5, 5)
    assert torch.equal(y, want_y)
    gm = gy.reshape(2, 5, -1).transpose(1, 2).reshape(-1, 5)
    c1, s1 = fp4_quantize(gm, phase=1)
    dw = log_gemm(c1.t().contiguous(), xm, x_signed=True)
    want_gw = (dw.double() * (s1 * 2.0**-1 * 4.0**-6 / 15)).float().reshape(conv.weight.shape)
    assert torch.equal(conv.weight.grad, want_gw)


def test_pact_float_path_uses_quantize_pact():
    pact = PACT(config=QuantConfig(pact_alpha=2.0))
    x = torch.linspace(-1, 3, 41, requires_grad=True)
    z = pact(x)
    assert torch.equal(z, (quantize_pact(x.detach(), 2.0).double() * (2.0 / 15)).float())
    z.sum().backward()
    assert torch.equal(x.grad, ((x > 0) & (x < 2)).float())
    assert float(pact.alpha.grad) == float((x >= 2).sum())


def test_quantized_layer_rejects_input_without_codes():
    layer = QLinear(4, 2, config=QuantConfig(), input_mode="codes", name="q")
    with pytest.raises(RuntimeError, match="expects UINT4 codes"):
        layer(torch.rand(3, 4))


def test_converted_layer_after_a_float_op_uses_the_signed_quantizer():
    from golden.formats import quantize_activation

    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4, bias=False), nn.Linear(4, 2))
    convert(model, QuantConfig())
    x = torch.randn(3, 4)
    h = model[1](model[0](x))
    y = model[2](h)
    codes, step = quantize_activation(h.detach())
    w_codes, w_step = pipeline.quantize_weight_sawb(model[2].weight)
    want = ((codes.double() @ w_codes.double().t()) * (step * w_step)).float()
    assert torch.equal(y, want)
    assert model[2].input_paths == {"signed": 1}


def test_convert_keeps_first_and_last_on_request():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    convert(model, QuantConfig(keep_first=True, keep_last=True))
    assert type(model[1]) is nn.Linear and type(model[5]) is nn.Linear and isinstance(model[3], QLinear)
    assert model[3].input_mode == "auto"
    out = model(torch.rand(2, 4))
    assert model[3].input_paths == {"codes": 1}
    assert out.shape == (2, 2) and bool(torch.isfinite(out).all())
    with pytest.raises(TypeError):
        convert(nn.Linear(2, 2), config={"tpr": True})
    with pytest.raises(ValueError):
        QuantConfig(dx_phase=2)


def test_recipes_and_options():
    r = get_recipe("ibm4", {"tpr": "0", "sawb_c": "10,11", "rounding": "log"})
    assert r.quant.tpr is False and r.quant.sawb_c == (10.0, 11.0) and r.quant.rounding == "log"
    assert get_recipe("ibm4").quant.keep_first and not get_recipe("ibm4-full").quant.keep_first
    with pytest.raises(ValueError, match="valid: fp32, ibm4"):
        get_recipe("int2")
    with pytest.raises(ValueError, match="unknown recipe option"):
        get_recipe("ibm4", {"nonsense": "1"})
    with pytest.raises(ValueError, match="expected a value"):
        get_recipe("ibm4", {"tpr": "maybe"})


# --- capture -----------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", ["ibm4-full", "luq"])
def test_capture_file_reverifies_against_reference(tmp_path, recipe):
    path, records = captured_lenet_run(tmp_path, recipe)
    assert {r["step"] for r in records} == {1}
    ops = {(r["layer"], r["op"]) for r in records}
    # four quantized weight layers (ibm4-full): fwd and dW each, dX for all but the image layer,
    # a requantization after each
    assert sum(op == "fwd" for _, op in ops) == 4 and sum(op == "dw" for _, op in ops) == 4
    assert sum(op == "dx" for _, op in ops) == 3 and sum(op == "requant" for _, op in ops) == 4
    n = verify_capture(path)
    assert n == len(records)  # every record, radix-2 (luq) gradient GEMMs included
    fwd = next(r for r in records if r["op"] == "fwd" and r["layer"] == "0")
    assert fwd["a"].dtype.name == "int8" and fwd["c"].dtype.name == "int64" and fwd["a_signed"] is True
    # a tampered file fails verification
    import numpy as np

    with np.load(path) as f:
        arrays = dict(f)
    key = next(k for k in arrays if k.endswith("/fwd/c"))
    arrays[key] = arrays[key] + 1
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(AssertionError):
        verify_capture(tmp_path / "bad.npz")
