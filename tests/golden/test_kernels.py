"""golden.kernels and the int8 log GEMMs equal their definitions bit for bit, eager and compiled."""

import pytest
import torch

from golden import fused, kernels, pipeline
from golden.formats import FP4_RADIX2, FP4_RADIX4
from golden.reference import log_gemm
from golden.requant import requant_params, requantize_pact


def _bits(t):
    return t.contiguous().view({4: torch.int32, 8: torch.int64, 2: torch.int16, 1: torch.uint8}[t.element_size()])


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def _floats(n, gen, scale=1.0):
    """Random floats with the edge cases: signed zeros, ties of the step, subnormals, huge values."""
    x = torch.randn(n, generator=gen, dtype=torch.float64).mul_(scale).to(torch.float32)
    edge = torch.tensor([0.0, -0.0, 1e-45, -1e-45, 1e-39, 3e38, -3e38, 0.5, 1.5, 2.5, -2.5], dtype=torch.float32)
    x[: edge.numel()] = edge
    return x


@pytest.fixture(params=["eager", pytest.param("compiled", marks=pytest.mark.slow)])
def mode(request, monkeypatch):
    """Eager kernels, or every kernel call compiled (slow: seconds of compilation per kernel when uncached)."""
    if request.param == "compiled":
        if not kernels.COMPILE:
            pytest.skip("torch.compile disabled")
        monkeypatch.setattr(kernels, "COMPILE_MIN_NUMEL", 0)
        monkeypatch.setattr(kernels, "COMPILE_AFTER_CALLS", 0)
    else:
        monkeypatch.setattr(kernels, "COMPILE", False)
    return request.param


def test_scale_equals_float64_product(mode):
    gen = torch.Generator().manual_seed(1)
    acc = torch.randint(-(1 << 23), 1 << 23, (4099,), generator=gen)
    for dtype in (torch.int32, torch.float32, torch.float64):
        for unit in (1e-3, 2.0**-140, 3.7e30, 1 / 3):
            ref = (acc.to(dtype).to(torch.float64) * unit).to(torch.float32)
            assert _same(kernels.scale(acc.to(dtype), unit), ref)


def test_requant_pact_equals_integer_definition(mode):
    gen = torch.Generator().manual_seed(2)
    for dtype, hi in ((torch.int32, 1 << 30), (torch.float32, 1 << 23), (torch.int64, 1 << 39)):
        acc = torch.randint(-hi, hi, (5003,), generator=gen)
        acc[:4] = torch.tensor([0, -1, hi - 1, -hi])
        for r in (1e-4, 0.37, 3.0, 2.0**-40):
            m0, shift = requant_params(r)
            step = 4.0 / 15
            codes, value, state = kernels.requant_pact(acc.to(dtype), m0, shift, step)
            ref, inside, saturated = requantize_pact(acc, m0, shift)
            assert codes.dtype == torch.int8 and torch.equal(codes.to(torch.uint8), ref)
            assert torch.equal(state == kernels.STATE_INSIDE, inside)
            assert torch.equal(state == kernels.STATE_SATURATED, saturated)
            assert _same(value, (ref.to(torch.float64) * step).to(torch.float32))


@pytest.mark.parametrize("alpha", [4.0, 0.75, 6.5, 2.0**-10])
def test_pact_float_equals_pact_quantize(mode, alpha):
    gen = torch.Generator().manual_seed(3)
    y = _floats(6007, gen, scale=alpha)
    y[20:40] = torch.arange(20, dtype=torch.float32) * (alpha / 30)  # half-step ties
    y[40] = alpha
    codes, value, state = kernels.pact_float(y, alpha)
    ref, inside, saturated = fused.pact_quantize(y, alpha)
    assert torch.equal(codes.to(torch.float64), ref)
    assert torch.equal(state == kernels.STATE_INSIDE, inside.bool())
    assert torch.equal(state == kernels.STATE_SATURATED, saturated.bool())
    assert _same(value, (ref * (alpha / 15)).to(torch.float32))
    y[5] = float("nan")
    assert kernels.pact_float(y, alpha) is None


def test_pact_backward_equals_masked(mode):
    gen = torch.Generator().manual_seed(4)
    g = _floats(4111, gen)
    g[11] = float("nan")
    state = torch.randint(0, 3, g.shape, generator=gen, dtype=torch.int32)
    grad, sat = kernels.pact_backward(g, state)
    assert _same(grad, fused.masked(g, state == kernels.STATE_INSIDE))
    assert _same(sat, fused.masked(g, state == kernels.STATE_SATURATED))


def test_recover_counts_equals_old_recovery(mode):
    gen = torch.Generator().manual_seed(5)
    for unit in (2.0**-20 * 0.7, 1e-30, 3.3):
        ints = torch.randint(-(1 << 22), 1 << 22, (3001,), generator=gen).to(torch.float64)
        g = (ints * unit).to(torch.float32)
        counts, exact, amax = kernels.recover_counts(g, unit)
        ref = torch.round(g.to(torch.float64) / unit)
        assert _same(counts, ref.to(torch.float32))
        assert exact == torch.equal((ref * unit).to(torch.float32), g)
        assert amax == float(ref.abs().max())
        g[7] = g[7] * 1.5 + unit  # no longer an image of an integer
        assert not kernels.recover_counts(g, unit)[1]
        g[7] = float("nan")
        assert not kernels.recover_counts(g, unit)[1]
    assert kernels.recover_counts(torch.zeros(0), 1.0)[1:] == (True, 0.0)


def test_sawb_kernels_equal_definitions(mode):
    gen = torch.Generator().manual_seed(6)
    w = _floats(5000, gen, scale=0.05)[11:]
    w64 = w.to(torch.float64)
    sq, ab = kernels.square_abs64(w)
    assert _same(sq, w64 * w64) and _same(ab, w64.abs())
    for step in (0.01, 1 / 3, 1e-30):
        assert torch.equal(kernels.sawb_codes(w, step), torch.round(w64 / step).clamp(-7, 7).to(torch.int8))
    codes, step = pipeline.quantize_weight_sawb(w, dtype=torch.int8)
    ref, ref_step = pipeline.quantize_weight_sawb(w)
    assert step == ref_step and torch.equal(codes.to(torch.float32), ref)


@pytest.mark.parametrize("fmt", [FP4_RADIX4, FP4_RADIX2], ids=["radix4", "radix2"])
@pytest.mark.parametrize(("m", "k", "n", "x_max"), [(5, 9, 3, 15), (64, 256, 32, 7), (0, 3, 4, 15), (3, 0, 2, 7)])
def test_log_int_mm_equals_reference(fmt, m, k, n, x_max):
    gen = torch.Generator().manual_seed(m * 1000 + k)
    g = torch.randint(0, 16, (m, k), generator=gen, dtype=torch.uint8)
    x = torch.randint(-7 if x_max == 7 else 0, x_max + 1, (k, n), generator=gen)
    out = pipeline.log_int_mm(g, x.to(torch.int8), x_max, fmt)
    if not pipeline.INT_MM:
        assert out is None
        return
    assert out.dtype == torch.int32
    assert torch.equal(out.to(torch.int64), log_gemm(g, x, x_signed=x_max == 7, fmt=fmt))
    ref = pipeline.log_bilinear(torch.matmul, g, x.to(torch.float32), terms=k, x_max=x_max, fmt=fmt)
    assert torch.equal(out.to(torch.float64), ref.to(torch.float64))
    gt = g.t().contiguous()
    assert torch.equal(pipeline.log_int_mm(gt, x.to(torch.int8), x_max, fmt, transpose_g=True), out)
    keyed = fused.KeyedCodes(g.to(torch.int32), torch.arange(16, dtype=torch.uint8))
    assert torch.equal(pipeline.log_int_mm(keyed, x, x_max, fmt), out)


def test_log_int_mm_widens_and_refuses():
    if not pipeline.INT_MM:
        pytest.skip("no torch._int_mm")
    gen = torch.Generator().manual_seed(7)
    k = 40000  # 40000 * 15 * 4^6 >= 2^31: combined in int64; each group (4^3) stays below 2^31
    g = torch.randint(0, 16, (3, k), generator=gen, dtype=torch.uint8)
    x = torch.randint(0, 16, (k, 2), generator=gen)
    out = pipeline.log_int_mm(g, x, 15)
    assert out.dtype == torch.int64
    assert torch.equal(out, log_gemm(g, x, x_signed=False))
    assert pipeline.log_int_mm(g, x, 200) is None  # beyond int8
    assert pipeline.log_int_mm(g[None], x, 15) is None  # batched
    big = torch.zeros(1, 3_000_000, dtype=torch.uint8)
    assert pipeline.log_int_mm(big, torch.zeros(3_000_000, 1), 15) is None  # a group beyond 2^31


def test_keyed_codes_equal_plain_codes():
    gen = torch.Generator().manual_seed(8)
    counts = torch.randint(-5000, 5000, (37, 29), generator=gen).to(torch.float32)
    amax = float(counts.abs().max())
    plain = fused.fp4_encode(counts, amax, 1e-3, (0, 1), FP4_RADIX4)
    keyed = fused.fp4_encode(counts, amax, 1e-3, (0, 1), FP4_RADIX4, keyed=True)
    table = torch.randn(16)
    for p in (0, 1):
        codes, s = plain[p]
        kc, ks = keyed[p]
        assert s == ks and torch.equal(kc.codes(), codes)
        assert torch.equal(fused.gather(table, kc), fused.gather(table, codes))
        perm = kc.reshape(29, 37).permute(1, 0).contiguous()
        assert torch.equal(perm.codes(), codes.reshape(29, 37).permute(1, 0))
        assert torch.equal(kc & 7, codes & 7)


def test_a_capability_override_gets_its_own_inductor_cache():
    """Kernels cached under the machine's own ISA are not reused under ATEN_CPU_CAPABILITY."""
    env = {"ATEN_CPU_CAPABILITY": "AVX2"}
    kernels._separate_inductor_cache(env)
    assert env["TORCHINDUCTOR_CACHE_DIR"].endswith("-avx2") and "torchinductor_" in env["TORCHINDUCTOR_CACHE_DIR"]
    for env in ({"ATEN_CPU_CAPABILITY": "avx2", "TORCHINDUCTOR_CACHE_DIR": "/elsewhere"}, {}):
        before = dict(env)
        kernels._separate_inductor_cache(env)
        assert env == before
