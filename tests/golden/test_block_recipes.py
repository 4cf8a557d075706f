"""The mxfp4 / nvfp4 training recipes: every GEMM of a step is SPEC 7's block GEMM on the right axes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from golden.blocklayers import (
    BlockConfig,
    BlockConv2d,
    BlockLinear,
    BlockMatMul,
    block_linear_gemms,
    block_matmul,
    convert_block,
    hadamard16,
)
from golden.formats import E2M1, block_quantize
from golden.formats.blockfp import (
    block_quantize_stochastic,
    block_quantize_tiles,
    tile_scales_for_axis,
)
from golden.layers import quantized_layers
from golden.recipes import get_recipe, prepare_model
from golden.reference import block_gemm

CONFIGS = {
    "mxfp4": BlockConfig(fmt="mxfp4"),
    "nvfp4": BlockConfig(fmt="nvfp4", weight_tiles=True),
    "nvfp4-1d": BlockConfig(fmt="nvfp4"),
}


def bits(t):
    return t.contiguous().view(torch.int32)


def assert_bits(a, b):
    assert a.dtype == b.dtype == torch.float32
    assert torch.equal(bits(a), bits(b))


def _operands(m=37, k=70, n=23, seed=0):
    gen = torch.Generator().manual_seed(seed)
    # Row and column magnitudes spread over decades: a block along the wrong axis changes its scale.
    x = torch.randn(m, k, generator=gen) * torch.logspace(-3, 2, m).unsqueeze(1)
    w = torch.randn(n, k, generator=gen) * torch.logspace(2, -2, k).unsqueeze(0)
    g = torch.randn(m, n, generator=gen) * torch.logspace(-4, 1, n).unsqueeze(0) * torch.logspace(1, -3, m)[:, None]
    return x, w, g


def _gemm(a, a_axis, b, b_axis, fmt):
    """Reference: block_quantize each operand along the given axis, block_gemm, tensor scales after."""
    ac, as_, ga = block_quantize(a, fmt, a_axis)
    bc, bs_, gb = block_quantize(b, fmt, b_axis)
    return _apply_g(block_gemm(ac, as_, bc, bs_, fmt), ga, gb)


def _apply_g(c, ga, gb):
    return (c.to(torch.float64) / (ga * gb)).to(torch.float32)


def _reference_step(x, w, g, cfg):
    fmt = cfg.fmt
    if cfg.weight_tiles:
        wc, tiles, gw = block_quantize_tiles(w, fmt)
        y = block_quantize(x, fmt, 1)
        y = _apply_g(block_gemm(y[0], y[1], wc.t(), tile_scales_for_axis(tiles, w.shape, 1, fmt).t(), fmt), y[2], gw)
        gq = block_quantize(g, fmt, 1)
        dx = _apply_g(block_gemm(gq[0], gq[1], wc, tile_scales_for_axis(tiles, w.shape, 0, fmt), fmt), gq[2], gw)
    else:
        y = _gemm(x, 1, w.t(), 0, fmt)
        dx = _gemm(g, 1, w, 0, fmt)
    dw = _gemm(g.t(), 1, x, 0, fmt)
    return y, dx, dw


@pytest.mark.parametrize("name", list(CONFIGS))
def test_linear_step_is_block_quantize_plus_block_gemm(name):
    cfg = CONFIGS[name]
    x, w, g = _operands()
    layer = BlockLinear(w.shape[1], w.shape[0], bias=False, config=cfg, name="l")
    with torch.no_grad():
        layer.weight.copy_(w)
    xr = x.clone().requires_grad_(True)
    y = layer(xr)
    y.backward(g)
    want_y, want_dx, want_dw = _reference_step(x, w, g, cfg)
    assert_bits(y.detach(), want_y)
    assert_bits(xr.grad, want_dx)
    assert_bits(layer.weight.grad, want_dw)
    # The functional form gives the same three GEMMs.
    for got, want in zip(block_linear_gemms(x, w, g, cfg, seed=0), (want_y, want_dx, want_dw)):
        assert_bits(got, want)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_each_gemm_blocks_along_its_reduction_axis(fmt):
    """Every operand of the step test quantizes differently along its two axes, so the bit-exact step
    comparison fails if a GEMM blocks an operand along the wrong one; and the step is the
    right-axis reference, not the wrong-axis one."""
    from golden.formats import block_decode

    x, w, g = _operands()
    for t in (x, w, g):
        along = [block_decode(*block_quantize(t, fmt, axis), fmt, axis) for axis in (0, 1)]
        assert not torch.equal(along[0], along[1])
    cfg = BlockConfig(fmt=fmt)
    y, dx, dw = block_linear_gemms(x, w, g, cfg, seed=0)
    # dW with dY reused from the dX quantization (blocked along N, decoded) instead of re-blocked along M.
    gq = block_quantize(g, fmt, 1)
    g_along_n = block_decode(*gq, fmt, 1).to(torch.float32)
    assert not torch.equal(bits(dw), bits(_gemm(g_along_n.t(), 1, x, 0, fmt)))
    assert_bits(dw, _gemm(g.t(), 1, x, 0, fmt))
    # The forward with W blocked along N (the dX quantization) instead of K.
    wq = block_decode(*block_quantize(w, fmt, 0), fmt, 0).to(torch.float32)
    assert not torch.equal(bits(y), bits(_gemm(x, 1, wq.t(), 0, fmt)))
    assert_bits(y, _gemm(x, 1, w.t(), 0, fmt))
    assert_bits(dx, _gemm(g, 1, w, 0, fmt))


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_batched_block_matmul_is_block_gemm_per_matrix(fmt):
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(2, 3, 9, 40, generator=gen) * 10.0 ** torch.randint(-30, 30, (2, 3, 9, 1), generator=gen)
    b = torch.randn(2, 3, 40, 5, generator=gen) * 10.0 ** torch.randint(-30, 30, (2, 3, 1, 5), generator=gen)
    ac, as_, _ = block_quantize(a, fmt, -1)
    bc, bs_, _ = block_quantize(b, fmt, -2)
    c = block_matmul(ac, as_, bc, bs_, fmt)
    for i in range(2):
        for j in range(3):
            assert_bits(c[i, j], block_gemm(ac[i, j], as_[i, j], bc[i, j], bs_[i, j], fmt))


def test_block_matmul_extreme_mxfp4_scales_overflow_and_underflow_like_block_gemm():
    gen = torch.Generator().manual_seed(4)
    a = torch.randint(0, 16, (6, 64), generator=gen, dtype=torch.uint8)
    b = torch.randint(0, 16, (64, 7), generator=gen, dtype=torch.uint8)
    sa = torch.tensor([0, 1, 254, 253, 127, 200], dtype=torch.uint8)[:, None].expand(6, 2).contiguous()
    sb = torch.tensor([0, 254, 127, 3, 250, 60, 128], dtype=torch.uint8)[None, :].expand(2, 7).contiguous()
    assert_bits(block_matmul(a, sa, b, sb, "mxfp4"), block_gemm(a, sa, b, sb, "mxfp4"))


def test_conv_step_is_the_im2col_block_gemm():
    cfg = CONFIGS["mxfp4"]
    gen = torch.Generator().manual_seed(5)
    conv = BlockConv2d(3, 4, 3, stride=2, padding=1, bias=False, config=cfg, name="c")
    x = torch.randn(2, 3, 7, 6, generator=gen)
    y = conv(x)
    ref = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
    assert y.shape == ref(x).shape
    cols = F.unfold(x, kernel_size=3, padding=1, stride=2)  # B x K x L
    xm = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    want = _gemm(xm, 1, conv.weight.detach().reshape(4, -1).t(), 0, "mxfp4")
    assert_bits(y.detach().permute(0, 2, 3, 1).reshape(-1, 4), want)


def test_stochastic_gradients_keep_the_scales_and_are_unbiased_between_neighbours():
    gen = torch.Generator().manual_seed(6)
    v = torch.randn(64, 48, generator=gen)
    for fmt in ("mxfp4", "nvfp4"):
        near = block_quantize(v, fmt, 0)
        sr = block_quantize_stochastic(v, fmt, 0, seed=7)
        assert torch.equal(sr[1], near[1]) and sr[2] == near[2]
        assert torch.equal(sr[0], block_quantize_stochastic(v, fmt, 0, seed=7)[0])
        assert not torch.equal(sr[0], block_quantize_stochastic(v, fmt, 0, seed=8)[0])
    # A value 1/4 of the way from 1 to 1.5 (a scale of 1: amax 4 -> X = 127) rounds up a quarter of the time.
    v = torch.full((1 << 14, 32), 1.125)
    v[:, 0] = 4.0
    codes = block_quantize_stochastic(v, "mxfp4", 1, seed=1)[0][:, 1:]
    assert set(codes.unique().tolist()) == {0x2, 0x3}
    assert abs(float((codes == 0x3).double().mean()) - 0.25) < 0.01


def test_hadamard16_is_orthogonal_and_keeps_the_dw_product():
    gen = torch.Generator().manual_seed(8)
    a = torch.randn(37, 5, generator=gen, dtype=torch.float64)
    b = torch.randn(37, 4, generator=gen, dtype=torch.float64)
    signs = torch.tensor([1.0, -1.0] * 8)
    ha, hb = hadamard16(a, signs), hadamard16(b, signs)
    assert ha.shape == (48, 5)
    assert torch.allclose(ha.t() @ hb, a.t() @ b, rtol=0, atol=1e-12)


def test_options_change_the_step_and_stay_deterministic():
    x, w, g = _operands()
    base = block_linear_gemms(x, w, g, CONFIGS["nvfp4"], seed=3)
    for opts in ({"grad_rounding": "stochastic"}, {"hadamard": "1"}):
        cfg = get_recipe("nvfp4", opts).quant
        one, two = block_linear_gemms(x, w, g, cfg, seed=3), block_linear_gemms(x, w, g, cfg, seed=3)
        assert_bits(one[0], base[0])  # the forward GEMM does not change
        assert all(torch.equal(bits(p), bits(q)) for p, q in zip(one, two))
        assert not torch.equal(bits(one[2]), bits(base[2]))


def test_recipe_options_parse_and_bad_ones_give_one_line():
    r = get_recipe("nvfp4", {"grad_rounding": "stochastic", "hadamard": "1", "weight_tiles": "0"})
    assert r.quant == BlockConfig(fmt="nvfp4", grad_rounding="stochastic", hadamard=True)
    assert get_recipe("mxfp4").quant == BlockConfig(fmt="mxfp4")
    assert get_recipe("nvfp4").quant.weight_tiles
    for opts, match in (
        ({"fmt": "nvfp4"}, "unknown recipe option 'fmt'"),
        ({"tpr": "1"}, "unknown recipe option 'tpr'"),
        ({"hadamard": "maybe"}, "expected a value like False"),
        ({"grad_rounding": "up"}, "grad_rounding must be one of nearest, stochastic"),
    ):
        with pytest.raises(ValueError, match=match) as e:
            get_recipe("mxfp4", opts)
        assert "\n" not in str(e.value)


def test_convert_block_keeps_first_and_last_fp32_and_converts_the_rest():
    from golden.models import GPT, LeNet5

    model = prepare_model(LeNet5(input_shape=(1, 28, 28), num_classes=10), get_recipe("mxfp4"))
    assert [type(m).__name__ for m in quantized_layers(model)] == ["BlockConv2d", "BlockLinear", "BlockLinear"]
    assert isinstance(model[0], nn.Conv2d) and not isinstance(model[0], BlockConv2d)
    assert any(isinstance(m, nn.ReLU) for m in model.modules())
    gpt = convert_block(GPT(vocab=11, context=8, layers=1, heads=2, dim=8), BlockConfig(fmt="nvfp4"))
    assert sum(isinstance(m, BlockMatMul) for m in gpt.modules()) == 2
    with pytest.raises(TypeError, match="BlockConfig"):
        convert_block(gpt, get_recipe("ibm4").quant)


@pytest.mark.parametrize("recipe", ["mxfp4", "nvfp4"])
def test_a_few_training_steps_lower_the_loss(recipe):
    from golden.models import MLP

    torch.manual_seed(0)
    model = prepare_model(MLP(input_shape=(1, 8, 8), num_classes=4, hidden=32, depth=2), get_recipe(recipe))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 8, 8, generator=gen)
    y = (x.reshape(64, -1)[:, :4].argmax(1)).long()
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_block_matmul_of_attention_backward_matches_the_reference_axes():
    cfg = BlockConfig(fmt="mxfp4")
    mm = BlockMatMul(config=cfg, name="mm")
    gen = torch.Generator().manual_seed(9)
    a = torch.randn(1, 6, 40, generator=gen, requires_grad=True)
    b = torch.randn(1, 40, 5, generator=gen, requires_grad=True)
    g = torch.randn(1, 6, 5, generator=gen)
    mm(a, b).backward(g)
    assert_bits(a.grad[0], _gemm(g[0], 1, b.detach()[0].t(), 0, "mxfp4"))
    assert_bits(b.grad[0], _gemm(a.detach()[0].t(), 1, g[0], 0, "mxfp4"))


def test_e2m1_comparison_encoder_equals_the_generic_minifloat_encoder():
    from golden.formats.blockfp import MiniFloatFormat

    generic = MiniFloatFormat(name="e2m1", exponent_bits=2, mantissa_bits=1, bias=1)
    mags = torch.tensor(E2M1.magnitudes)
    ties = (mags[:-1] + mags[1:]) / 2
    points = torch.cat([mags, ties, torch.tensor([7.0, 1e300, 1e-300, 0.0])])
    points = torch.cat([points, torch.nextafter(points, torch.zeros_like(points)), torch.nextafter(points, points + 1)])
    gen = torch.Generator().manual_seed(10)
    x = torch.cat([points, -points, torch.randn(5000, generator=gen, dtype=torch.float64) * 4])
    assert torch.equal(E2M1.encode(x), generic.encode(x))
    assert E2M1.encode(x).dtype == torch.uint8


def test_bench_accuracy_table_has_the_block_recipes(tmp_path):
    import json

    from golden.bench import write_accuracy_table

    runs = (("digits", "mlp", 3, ("fp32", "mxfp4", "nvfp4")),)
    for recipe, acc in (("fp32", 0.9), ("nvfp4", 0.875)):
        m = {"test_accuracy": acc, "train_seconds": 1.0, "inexact_grad_steps": 0, "step_seconds_median": 0.1}
        m.update(threads=1, history=[{"test_accuracy": acc}])
        if recipe == "fp32":
            m["cpu_capability"] = "AVX2"  # the nvfp4 run predates the key
        (tmp_path / "runs").mkdir(exist_ok=True)
        (tmp_path / "runs" / f"digits-mlp-{recipe}-e3-s0.json").write_text(json.dumps(m))
    write_accuracy_table(out=tmp_path, runs=runs)
    header, _, row, _, footnote = (tmp_path / "accuracy.md").read_text().splitlines()
    # FP32 rounding depends on the kernels' vector ISA: the table says which ones its runs used.
    assert footnote == "(torch CPU kernels: AVX2, unknown)"
    assert json.loads((tmp_path / "accuracy.json").read_text())["cpu_capabilities"] == ["AVX2", "unknown"]
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["fp32 top-1 (%)"] == "90.00" and cells["nvfp4 (%)"] == "87.50" and cells["mxfp4 (%)"] == "-"
    assert cells["nvfp4 - fp32"] == "-2.50"


def test_bench_accuracy_unknown_recipe_is_one_line(capsys):
    from golden.bench import main

    assert main(["accuracy", "--data-dir", "x", "--recipes", "mxfp4,int2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--recipes 'mxfp4,int2': choose from" in err


@pytest.mark.parametrize("recipe", ["mxfp4", "nvfp4"])
def test_a_tiny_gpt_step_runs_through_the_block_attention(recipe):
    from golden.models import GPT

    torch.manual_seed(0)
    model = prepare_model(GPT(vocab=11, context=8, layers=1, heads=2, dim=16), get_recipe(recipe))
    x = torch.randint(0, 11, (3, 8))
    loss = F.cross_entropy(model(x).reshape(-1, 11), x.reshape(-1))
    loss.backward()
    layers = quantized_layers(model)
    assert {type(m).__name__ for m in layers} == {"BlockLinear", "BlockMatMul"}
    assert all(m.input_paths["block"] == 1 for m in layers)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
