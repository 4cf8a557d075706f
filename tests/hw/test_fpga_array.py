"""The lean FPGA arrays (hw.fpga_array) in the Amaranth simulator, bit-exact against golden.reference."""

import re

import numpy as np
import pytest
import torch
from amaranth.back import verilog
from amaranth.sim import Simulator

from golden.reference import int_gemm, log_gemm
from hw import tiling
from hw.arith import min_acc_width
from hw.fpga_array import LeanSystolicArray, lean_kinds
from hw.kinds import KINDS
from hw.kinds.int4 import PRODUCT_RANGE as INT_PRODUCT_RANGE


def simulate(kind, a_bits, b_bits, *, rows, cols, modes, acc_width=None, max_k=4096, plans=None):
    """Drive tiled GEMMs through the simulated lean array; the signed results (M x N int64) of each.

    ``plans`` (optional): several ``(a_bits, b_bits, modes)`` run back to back in one
    simulation (:func:`hw.tiling.concatenate`), the modes switched at each GEMM's first cycle.
    """
    dut = LeanSystolicArray(kind=kind, rows=rows, cols=cols, acc_width=acc_width, max_k=max_k)
    spec = KINDS[kind]
    parts = []
    for a, b, gemm_modes in plans or [(a_bits, b_bits, modes)]:
        part = tiling.schedule(a, b, rows, cols)
        part.modes = {name: np.full(part.cycles, value, dtype=np.uint8) for name, value in gemm_modes.items()}
        parts.append(part)
    plan = tiling.concatenate(parts) if len(parts) > 1 else parts[0]
    a_words = tiling.pack_words(plan.a_words, spec.a_width)
    b_words = tiling.pack_words(plan.b_words, spec.b_width)
    records = []

    async def bench(ctx):
        for cycle in range(plan.cycles + 4 * rows + cols + 8):
            if cycle < plan.cycles:
                for name, values in plan.modes.items():
                    ctx.set(getattr(dut, name), int(values[cycle]))
                ctx.set(dut.a_in, a_words[cycle])
                ctx.set(dut.b_in, b_words[cycle])
                ctx.set(dut.valid, int(plan.valid[cycle]))
                ctx.set(dut.clear, int(plan.clear[cycle]))
                ctx.set(dut.last, int(plan.last[cycle]))
            else:
                # Idle: garbage operands must not reach the results.
                ctx.set(dut.a_in, (1 << len(dut.a_in)) - 1)
                ctx.set(dut.b_in, (1 << len(dut.b_in)) - 1)
                ctx.set(dut.valid, 0)
                ctx.set(dut.clear, 0)
                ctx.set(dut.last, 0)
            await ctx.tick()
            valid = ctx.get(dut.out_valid)
            if valid:
                records.append((valid, ctx.get(dut.out_data)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    valid = tiling.unpack_words([r[0] for r in records], cols, 1)
    data = tiling.unpack_words([r[1] for r in records], cols, dut.acc_width)
    columns = [data[valid[:, j] == 1, j] for j in range(cols)]
    if len(parts) == 1:
        results = [tiling.assemble(plan, columns)]
    else:
        results = [tiling.assemble(p, c) for p, c in zip(parts, tiling.split_columns(parts, columns))]
    return [tiling.sign_extend(r, dut.acc_width) for r in results]


def int_reference(a, b, a_signed, b_signed):
    return int_gemm(torch.from_numpy(a), torch.from_numpy(b), a_signed=bool(a_signed), b_signed=bool(b_signed)).numpy()


def int_operands(rng, shape, signed):
    return rng.integers(-8, 8, shape) if signed else rng.integers(0, 16, shape)


def test_lean_kinds():
    assert lean_kinds() == ["int4", "log"]


@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (3, 2)])
def test_int4_random_every_mode(rows, cols):
    rng = np.random.default_rng(rows * 10 + cols)
    for a_signed in (0, 1):
        for b_signed in (0, 1):
            a, b = int_operands(rng, (5, 7), a_signed), int_operands(rng, (7, 4), b_signed)
            (got,) = simulate(
                "int4", a & 15, b & 15, rows=rows, cols=cols, modes={"a_signed": a_signed, "b_signed": b_signed}
            )
            assert np.array_equal(got, int_reference(a, b, a_signed, b_signed)), (a_signed, b_signed)


def test_int4_every_code_pair_and_modes_back_to_back():
    """All 16 x 16 code pairs (K = 1 outer products) in each mode, the four GEMMs in one run."""
    codes = np.arange(16)
    plans = []
    for a_signed in (0, 1):
        for b_signed in (0, 1):
            plans.append((codes[:, None], codes[None, :], {"a_signed": a_signed, "b_signed": b_signed}))
    results = simulate("int4", None, None, rows=2, cols=3, modes=None, plans=plans)
    for (a, b, modes), got in zip(plans, results):
        a_vals = np.where(a > 7, a - 16, a) if modes["a_signed"] else a
        b_vals = np.where(b > 7, b - 16, b) if modes["b_signed"] else b
        assert np.array_equal(got, a_vals * b_vals), modes


@pytest.mark.parametrize("a_signed,b_signed", [(0, 0), (1, 1), (0, 1), (1, 0)])
def test_int4_extremes_at_the_declared_k(a_signed, b_signed):
    """max_k products of every extreme code pair: the narrow PE accumulators and sums never overflow."""
    max_k = 37
    width = min_acc_width(INT_PRODUCT_RANGE, max_k)
    lo, hi = (8, 7) if a_signed else (0, 15)
    a = np.array([[lo] * max_k, [hi] * max_k])
    lo, hi = (8, 7) if b_signed else (0, 15)
    b = np.array([[lo, hi]] * max_k)
    (got,) = simulate(
        "int4", a, b, rows=2, cols=2, modes={"a_signed": a_signed, "b_signed": b_signed}, acc_width=width, max_k=max_k
    )
    a_vals = np.where(a > 7, a - 16, a) if a_signed else a
    b_vals = np.where(b > 7, b - 16, b) if b_signed else b
    assert np.array_equal(got, a_vals @ b_vals)


def test_int4_k_zero_and_short_tiles():
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 16, (4, 0)), rng.integers(-8, 8, (0, 3))
    (got,) = simulate("int4", a, b & 15, rows=2, cols=3, modes={"a_signed": 0, "b_signed": 1})
    assert np.array_equal(got, np.zeros((4, 3), dtype=np.int64))
    a, b = rng.integers(0, 16, (7, 1)), rng.integers(0, 16, (1, 5))
    (got,) = simulate("int4", a, b, rows=3, cols=2, modes={"a_signed": 0, "b_signed": 0})
    assert np.array_equal(got, a @ b)


@pytest.mark.parametrize("b_signed", [0, 1])
def test_log_random(b_signed):
    rng = np.random.default_rng(7 + b_signed)
    g = rng.integers(0, 16, (4, 7)).astype(np.uint8)
    g[0] = 7  # e = 7: the largest shift
    g[1] = 15
    x = int_operands(rng, (7, 5), b_signed)
    (got,) = simulate("log", g, x & 15, rows=2, cols=3, modes={"b_signed": b_signed})
    expected = log_gemm(torch.from_numpy(g), torch.from_numpy(x), x_signed=bool(b_signed)).numpy()
    assert np.array_equal(got, expected)


def test_refusals():
    with pytest.raises(ValueError, match="no lean FPGA rule"):
        LeanSystolicArray(kind="train", rows=2, cols=2)
    with pytest.raises(ValueError, match="can overflow"):
        LeanSystolicArray(kind="int4", rows=2, cols=2, acc_width=12, max_k=4096)
    with pytest.raises(TypeError):
        LeanSystolicArray(kind="int4", rows=2.0, cols=2)


@pytest.mark.parametrize("kind", ["int4", "log"])
def test_no_broadcast_growing_with_the_array(kind):
    """Every input port drives a fixed number of loads whatever the size (mode bits along the edges only)."""

    def port_uses(rows, cols):
        text = verilog.convert(LeanSystolicArray(kind=kind, rows=rows, cols=cols), name="top", emit_src=False)
        ports = ["valid", "clear", "last", *KINDS[kind].a_modes, *KINDS[kind].b_modes]
        return {p: len(re.findall(rf"(?<![\w$.]){p}(?![\w\[])", text)) for p in ports}

    assert port_uses(2, 2) == port_uses(5, 4)


def test_narrower_than_the_plain_array():
    """The PE accumulators hold the lean products (-56..64) only: narrower than the results."""
    array = LeanSystolicArray(kind="int4", rows=2, cols=2, max_k=256)
    array._MustUse__silence = True  # inspected, not elaborated
    assert (array.pe_acc_width, array.acc_width) == (16, 17)
    assert array.max_k >= 256
