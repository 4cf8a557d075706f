"""The systolic arrays in the Amaranth simulator: tiny sizes, bit-exact against golden.reference."""

import re

import numpy as np
import pytest
import torch
from amaranth.back import verilog
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from golden.formats.fp16 import float_to_fp32_bits
from golden.reference import fp16_gemm, int_gemm, log_gemm
from hw import tiling
from hw.arith import max_safe_k, min_acc_width
from hw.array import SystolicArray, min_tile_cycles
from hw.kinds import KINDS as ARRAY_KINDS
from hw.kinds.int4 import PRODUCT_RANGE as INT_PRODUCT_RANGE
from hw.kinds.train import MODE_INT, MODE_LOG
from hw.kinds.train import PRODUCT_RANGE as TRAIN_PRODUCT_RANGE


def simulate(
    kind, a_bits, b_bits, *, rows, cols, modes, acc_width=None, max_k=4096, gated=True, zero_hold=True, watch=None
):
    """Drive the tiled GEMM through the Amaranth simulator; raw result words (M x N uint64).

    ``watch``: a list that receives, after every clock edge, the values of the
    array's zero-holding operand registers and their flags (``held_registers``).
    """
    dut = SystolicArray(
        kind=kind, rows=rows, cols=cols, acc_width=acc_width, max_k=max_k, gated=gated, zero_hold=zero_hold
    )
    spec = ARRAY_KINDS[kind]
    plan = tiling.schedule(a_bits, b_bits, rows, cols)
    a_words = tiling.pack_words(plan.a_words, spec.a_width)
    b_words = tiling.pack_words(plan.b_words, spec.b_width)
    records = []

    async def bench(ctx):
        for name, value in modes.items():
            ctx.set(getattr(dut, name), value)
        for cycle in range(plan.cycles + 4 * rows + cols + 8):
            if cycle < plan.cycles:
                ctx.set(dut.a_in, a_words[cycle])
                ctx.set(dut.b_in, b_words[cycle])
                ctx.set(dut.valid, int(plan.valid[cycle]))
                ctx.set(dut.clear, int(plan.clear[cycle]))
                ctx.set(dut.last, int(plan.last[cycle]))
            else:
                ctx.set(dut.valid, 0)
                ctx.set(dut.clear, 0)
                ctx.set(dut.last, 0)
            await ctx.tick()
            if watch is not None:
                watch.append([(ctx.get(data), ctx.get(flag)) for data, flag in dut.held_registers])
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
    return tiling.assemble(plan, columns), dut.acc_width


def int_result(raw, width):
    return tiling.sign_extend(raw, width)


@pytest.mark.parametrize("kind", ["int4", "train"])
def test_ungated_and_gated_arrays_agree(kind):
    """``gated=False`` (every register loads every cycle) computes what the lean default does."""
    rng = np.random.default_rng(11)
    a = rng.integers(-8, 8, (5, 9))
    b = rng.integers(-8, 8, (9, 4))
    a[rng.random(a.shape) < 0.4] = 0  # zero operands: the lean accumulators skip them
    modes = {name: 1 for name in ARRAY_KINDS[kind].a_modes + ARRAY_KINDS[kind].b_modes}
    modes.pop("mode", None)
    if "mode" in ARRAY_KINDS[kind].a_modes:
        modes["mode"] = 0
    lean, width = simulate(kind, a & 15, b & 15, rows=3, cols=2, modes=modes)
    plain, plain_width = simulate(kind, a & 15, b & 15, rows=3, cols=2, modes=modes, gated=False)
    assert width == plain_width and np.array_equal(lean, plain)
    assert np.array_equal(
        int_result(lean, width),
        int_gemm(torch.from_numpy(a), torch.from_numpy(b), a_signed=True, b_signed=True).numpy(),
    )


@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (3, 2)])
@pytest.mark.parametrize("a_signed,b_signed", [(1, 1), (0, 1), (1, 0), (0, 0)])
def test_int4_random(rows, cols, a_signed, b_signed):
    rng = np.random.default_rng(rows * 10 + cols + 100 * a_signed + 200 * b_signed)
    m, k, n = 5, 6, 4
    a = rng.integers(-8, 8, (m, k)) if a_signed else rng.integers(0, 16, (m, k))
    b = rng.integers(-8, 8, (k, n)) if b_signed else rng.integers(0, 16, (k, n))
    raw, width = simulate(
        "int4", a & 15, b & 15, rows=rows, cols=cols, modes={"a_signed": a_signed, "b_signed": b_signed}
    )
    expected = int_gemm(
        torch.from_numpy(a), torch.from_numpy(b), a_signed=bool(a_signed), b_signed=bool(b_signed)
    ).numpy()
    assert np.array_equal(int_result(raw, width), expected)


@pytest.mark.parametrize("kind", ["log", "train"])
@pytest.mark.parametrize("b_signed", [0, 1])
def test_log_random(kind, b_signed):
    rng = np.random.default_rng(7 + b_signed)
    g = rng.integers(0, 16, (4, 7)).astype(np.uint8)
    g[0] = 7  # e = 7: the largest shift
    g[1] = 15
    x = rng.integers(-8, 8, (7, 5)) if b_signed else rng.integers(0, 16, (7, 5))
    modes = {"b_signed": b_signed}
    if kind == "train":
        modes.update(mode=MODE_LOG, a_signed=1)
    raw, width = simulate(kind, g, x & 15, rows=2, cols=3, modes=modes)
    expected = log_gemm(torch.from_numpy(g), torch.from_numpy(x), x_signed=bool(b_signed)).numpy()
    assert np.array_equal(int_result(raw, width), expected)


def test_train_forward_mode():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 16, (3, 9)), rng.integers(-8, 8, (9, 4))
    raw, width = simulate("train", a, b & 15, rows=3, cols=2, modes={"mode": MODE_INT, "a_signed": 0, "b_signed": 1})
    assert np.array_equal(int_result(raw, width), a @ b)


def test_fp16_random_and_specials():
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((3, 6)) * 50).astype(np.float16)
    b = (rng.standard_normal((6, 4)) * 50).astype(np.float16)
    a[0, :] = np.float16(60000.0)  # products overflow to inf
    b[:, 0] = np.float16(-6e-8)  # subnormal operand
    a[2, 3] = np.float16(np.inf)
    b[3, 2] = np.float16(0.0)  # inf * 0 = NaN
    raw, _ = simulate("fp16", a.view(np.uint16), b.view(np.uint16), rows=2, cols=3, modes={})
    expected = float_to_fp32_bits(fp16_gemm(torch.from_numpy(a), torch.from_numpy(b))).numpy()
    assert np.array_equal(raw.astype(np.int64), expected)


def test_k_zero_gives_zeros():
    raw, _width = simulate(
        "int4",
        np.zeros((3, 0), np.int64),
        np.zeros((0, 2), np.int64),
        rows=2,
        cols=2,
        modes={"a_signed": 1, "b_signed": 1},
    )
    assert raw.shape == (3, 2) and not raw.any()


def test_short_tiles_back_to_back():
    """K = 1 < 2R - 1: the schedule pads each tile to min_tile_cycles and nothing collides."""
    assert min_tile_cycles(3) == 5
    rng = np.random.default_rng(11)
    a, b = rng.integers(-8, 8, (7, 1)), rng.integers(-8, 8, (1, 5))
    raw, width = simulate("int4", a & 15, b & 15, rows=3, cols=2, modes={"a_signed": 1, "b_signed": 1})
    assert np.array_equal(int_result(raw, width), a @ b)


def test_accumulator_wraps_at_declared_width():
    """A narrow accumulator (declared max_k respected) wraps like the SPEC PEs beyond it."""
    k = 40
    width = min_acc_width(INT_PRODUCT_RANGE, 4)
    a, b = np.full((1, k), 15), np.full((k, 1), 15)
    dut_raw, _ = simulate("int4", a, b, rows=1, cols=1, modes={"a_signed": 0, "b_signed": 0}, acc_width=width, max_k=4)
    total = 225 * k
    assert int(dut_raw[0, 0]) == total % (1 << width)


def test_overflow_refused():
    with pytest.raises(ValueError, match=r"acc_width=16 can overflow.*max_k=1000 \(needs acc_width >= 19\)"):
        SystolicArray(kind="int4", rows=2, cols=2, acc_width=16, max_k=1000)
    for kind, products in (("int4", INT_PRODUCT_RANGE), ("train", TRAIN_PRODUCT_RANGE)):
        width = min_acc_width(products, 512)
        array = SystolicArray(kind=kind, rows=1, cols=1, acc_width=width, max_k=512)
        assert array.max_k == max_safe_k(products, width) >= 512
        Fragment.get(array, None)  # elaborates: the width is accepted
        with pytest.raises(ValueError, match="can overflow"):
            SystolicArray(kind=kind, rows=1, cols=1, acc_width=width - 1, max_k=512)


@pytest.mark.parametrize(
    "params,error",
    [
        (dict(kind="int8", rows=2, cols=2), ValueError),
        (dict(kind="int4", rows=0, cols=2), ValueError),
        (dict(kind="int4", rows=2, cols="2"), TypeError),
        (dict(kind="int4", rows=2, cols=2, max_k=0), ValueError),
        (dict(kind="fp16", rows=2, cols=2, acc_width=24), ValueError),
        (dict(kind="log", rows=2, cols=2, acc_width=True), TypeError),
    ],
)
def test_bad_parameters(params, error):
    with pytest.raises(error):
        SystolicArray(**params)


@pytest.mark.parametrize("kind", ["int4", "train"])
def test_no_broadcast_growing_with_the_array(kind):
    """Every input port drives a fixed number of loads, whatever the array size:
    controls and mode bits travel through registers instead of fanning out."""

    def port_uses(rows, cols):
        text = verilog.convert(SystolicArray(kind=kind, rows=rows, cols=cols), name="top", emit_src=False)
        ports = ["valid", "clear", "last", *list(ARRAY_KINDS[kind].a_modes + ARRAY_KINDS[kind].b_modes)]
        return {p: len(re.findall(rf"(?<![\w$.]){p}(?![\w\[])", text)) for p in ports}

    assert port_uses(2, 2) == port_uses(5, 4)
