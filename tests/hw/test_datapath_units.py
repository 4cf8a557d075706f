"""The datapath's requantizer and FP4 encoder against golden/, in Amaranth's simulator.

Exhaustive where feasible: every accumulator value of a 13-bit window for
several (M0, shift), and for the encoder every value of every tensor range
``[-amax, amax]`` with amax at both ends of each GradScale exponent up to
2^10; random wide values (40-bit accumulators, 48-bit gradients) besides.
"""

import random

import pytest
import torch
from amaranth.sim import Simulator

from golden.formats import fp4_quantize
from golden.requant import requant_params, requantize_pact
from hw.datapath import FP4Encoder, Requantizer


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


# The last three give the extreme shifts: 59 (the largest golden.requant computes in int64) and 1.
@pytest.mark.parametrize("real", [0.0123, 1 / 3, 2.0**-20 * 1.7, 7.9, 0.5, 2.0**-44, 2.0**14, 3e4])
def test_requantizer_exhaustive_window(real):
    m0, shift = requant_params(real)
    acc = torch.arange(-(1 << 12), 1 << 12, dtype=torch.int64)
    rng = random.Random(real)
    wide = [rng.randrange(-(1 << 39), 1 << 39) for _ in range(300)] + [-(1 << 39), (1 << 39) - 1]
    acc = torch.cat([acc, torch.tensor(wide, dtype=torch.int64)])
    codes, inside, sat = requantize_pact(acc, m0, shift)
    dut = Requantizer()
    bad = []

    async def bench(ctx):
        ctx.set(dut.m0, m0)
        ctx.set(dut.shift, shift)
        for a, c, i, s in zip(acc.tolist(), codes.tolist(), inside.tolist(), sat.tolist()):
            ctx.set(dut.total, a)
            got = (ctx.get(dut.code), ctx.get(dut.inside), ctx.get(dut.saturated))
            if got != (c, int(i), int(s)):
                bad.append((a, got, (c, i, s)))

    _run(dut, bench)
    assert not bad, f"(M0, shift) = {(m0, shift)}: {len(bad)} differences, first {bad[:3]}"


def _encoder_cases():
    for k in range(11):
        for amax in sorted({1 << k, (1 << (k - 1)) + 1 if k else 1}):
            yield amax, list(range(-amax, amax + 1))


def test_encoder_exhaustive_small_tensors():
    dut = FP4Encoder(value_width=16)
    bad = []
    cases = list(_encoder_cases())
    expected = []
    for _amax, values in cases:
        t = torch.tensor(values, dtype=torch.int64)
        c0, s0 = fp4_quantize(t, phase=0, unit=1.0)
        c1, s1 = fp4_quantize(t, phase=1, unit=1.0)
        assert s0 == s1
        expected.append((c0.tolist(), c1.tolist(), s0))

    async def bench(ctx):
        for (amax, values), (c0, c1, scale) in zip(cases, expected):
            ctx.set(dut.amax, amax)
            if 2.0 ** ctx.get(dut.k) != scale:
                bad.append(("k", amax, ctx.get(dut.k), scale))
            for v, e0, e1 in zip(values, c0, c1):
                ctx.set(dut.value, v)
                got = (ctx.get(dut.code0), ctx.get(dut.code1))
                if got != (e0, e1):
                    bad.append((amax, v, got, (e0, e1)))

    _run(dut, bench)
    assert not bad, f"{len(bad)} differences, first {bad[:3]}"


def test_encoder_random_wide():
    rng = random.Random(7)
    dut = FP4Encoder(value_width=48)
    tensors = []
    for _ in range(12):
        top = rng.randrange(1, 47)
        vals = [rng.randrange(-(1 << top), 1 << top) for _ in range(60)]
        vals += [1 << (top - 1), -(1 << top) + 1, 0]
        t = torch.tensor(vals, dtype=torch.int64)
        tensors.append((vals, int(t.abs().max()), fp4_quantize(t, 0)[0].tolist(), fp4_quantize(t, 1)[0].tolist()))
    bad = []

    async def bench(ctx):
        for vals, amax, c0, c1 in tensors:
            ctx.set(dut.amax, amax)
            for v, e0, e1 in zip(vals, c0, c1):
                ctx.set(dut.value, v)
                if (ctx.get(dut.code0), ctx.get(dut.code1)) != (e0, e1):
                    bad.append((amax, v))

    _run(dut, bench)
    assert not bad, f"{len(bad)} differences, first {bad[:3]}"


def test_spec_example_integer_tensor():
    """SPEC section 1: [3, -96, 7, 0, 1] -> k = 7, phase 0 codes [0x4, 0xF, 0x5, 0x0, 0x3]."""
    dut = FP4Encoder(value_width=16)
    got = []

    async def bench(ctx):
        ctx.set(dut.amax, 96)
        for v in (3, -96, 7, 0, 1):
            ctx.set(dut.value, v)
            got.append(ctx.get(dut.code0))
        got.append(ctx.get(dut.k))

    _run(dut, bench)
    assert got == [0x4, 0xF, 0x5, 0x0, 0x3, 7]


def test_bad_parameters():
    with pytest.raises(TypeError):
        FP4Encoder(value_width=4.0)
    with pytest.raises(ValueError):
        Requantizer(total_width=1)


def _fp32_bits(values):
    return torch.tensor(values, dtype=torch.float32).view(torch.int32).numpy().astype("int64") & 0xFFFFFFFF


def test_fp16_post_clamps_masks_and_rounds_like_torch():
    import numpy as np

    from golden.formats.fp16 import float_to_fp16_bits
    from hw.datapath import FP16Post

    rng = np.random.default_rng(3)
    x = np.concatenate(
        [rng.standard_normal(600) * 4.0, rng.standard_normal(200) * 1e-5, [0.0, -0.0, 3.9485, 3.9486, 7e4, -7e4]]
    ).astype(np.float32)
    keep = rng.integers(0, 2, len(x))
    alpha = np.float32(3.9485840797424316)
    tx = torch.from_numpy(x)
    forward = float_to_fp16_bits(torch.clamp(tx, min=0.0, max=float(alpha)).abs().to(torch.float16)).numpy()
    backward = float_to_fp16_bits(torch.where(torch.from_numpy(keep) == 1, tx, 0.0).to(torch.float16)).numpy()
    inside = (x > 0) & (x < alpha)
    dut = FP16Post()
    bad = []

    async def bench(ctx):
        ctx.set(dut.alpha, int(_fp32_bits([alpha])[0]))
        for i, bits in enumerate(_fp32_bits(x.tolist())):
            ctx.set(dut.x, int(bits))
            ctx.set(dut.relu, 1)
            got = (ctx.get(dut.y), ctx.get(dut.inside), ctx.get(dut.saturated))
            if got != (int(forward[i]), int(inside[i]), int(x[i] >= alpha)):
                bad.append(("fwd", float(x[i]), got))
            ctx.set(dut.relu, 0)
            ctx.set(dut.keep, int(keep[i]))
            got = (ctx.get(dut.y), ctx.get(dut.inside), ctx.get(dut.saturated))
            if got != (int(backward[i]), 0, 0):
                bad.append(("bwd", float(x[i]), got))

    _run(dut, bench)
    assert not bad, f"{len(bad)} differences, first {bad[:3]}"


def test_grad_post_masks_and_tracks_amax():
    from hw.datapath import GradPost

    rng = random.Random(11)
    values = [rng.randrange(-(1 << 39), 1 << 39) >> rng.randrange(40) for _ in range(400)]
    keeps = [rng.randrange(2) for _ in values]
    clears = [int(i % 97 == 0) for i in range(len(values))]
    dut = GradPost()
    bad = []

    async def bench(ctx):
        amax = 0
        for v, k, c in zip(values, keeps, clears):
            ctx.set(dut.value, v)
            ctx.set(dut.keep, k)
            ctx.set(dut.clear, c)
            masked = v if k else 0
            if ctx.get(dut.masked) != masked:
                bad.append(("masked", v, k))
            await ctx.tick()
            amax = abs(masked) if c else max(amax, abs(masked))
            if ctx.get(dut.amax) != amax:
                bad.append(("amax", v, k, c))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not bad, f"{len(bad)} differences, first {bad[:3]}"
