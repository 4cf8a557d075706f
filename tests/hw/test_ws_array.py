"""The weight-stationary arrays (hw.ws_array) in the Amaranth simulator: every GEMM of every kind,
tiny sizes, bit-exact against golden.reference and the captured GEMMs of a golden training step."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from hw import tiling
from hw.arith import min_acc_width
from hw.kinds import GEMMS, KINDS, dedicated_kind
from hw.ws_array import WeightStationaryArray, default_depth, min_depth


def simulate(kind, plan, *, acc_width, depth, max_k=None, zero_hold=True, watch=None):
    """Drive a weight-stationary schedule through the Amaranth simulator; per column, the drained raw words.

    ``watch``: a list that receives, after every clock edge, the values of the
    array's zero-holding A registers and their flags (``held_registers``).
    """
    rows, cols = plan.rows, plan.cols
    dut = WeightStationaryArray(
        kind=kind,
        rows=rows,
        cols=cols,
        depth=depth,
        acc_width=acc_width,
        max_k=max_k or kind.max_k(acc_width) or 1,
        zero_hold=zero_hold,
    )
    a_words = tiling.pack_words(plan.a_words, kind.a_width)
    w_words = tiling.pack_words(plan.w_words, kind.b_width)
    controls = {name: getattr(plan, name) for name in tiling.WSSchedule.CONTROLS}
    columns = [[] for _ in range(cols)]

    async def bench(ctx):
        for cycle in range(plan.cycles + rows + cols + 2):
            busy = cycle < plan.cycles
            ctx.set(dut.a_in, a_words[cycle] if busy else 0)
            ctx.set(dut.w_in, w_words[cycle] if busy else 0)
            for name, values in controls.items():
                ctx.set(getattr(dut, name), int(values[cycle]) if busy else 0)
            for name, values in plan.modes.items():
                ctx.set(getattr(dut, name), int(values[min(cycle, plan.cycles - 1)]))
            await ctx.tick()
            if watch is not None:
                watch.append([(ctx.get(data), ctx.get(flag)) for data, flag in dut.held_registers])
            valid, data = ctx.get(dut.out_valid), ctx.get(dut.out_data)
            for j in range(cols):
                if valid >> j & 1:
                    columns[j].append((data >> (j * acc_width)) & ((1 << acc_width) - 1))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return [np.array(c, dtype=np.uint64) for c in columns]


def plan_for(kind, gemm, a, b, *, a_signed, b_signed, rows, cols, depth):
    a_bits, b_bits = gemm.operand_bits(a, b, a_signed=a_signed, b_signed=b_signed)
    plan = tiling.ws_schedule(a_bits, b_bits, rows, cols, depth)
    plan.modes = {
        name: np.full(plan.cycles, value, dtype=np.uint8)
        for name, value in kind.mode_inputs(gemm, a_signed=a_signed, b_signed=b_signed).items()
    }
    return plan


def run(kind, gemm, a, b, *, a_signed=True, b_signed=True, rows=2, cols=3, depth=None, **options):
    """The GEMM on a weight-stationary array; ``options`` go to :func:`simulate` (``zero_hold``, ``watch``)."""
    depth = min_depth(rows) if depth is None else depth
    width = kind.acc_width_for(a.shape[1])
    plan = plan_for(kind, gemm, a, b, a_signed=a_signed, b_signed=b_signed, rows=rows, cols=cols, depth=depth)
    raw = tiling.ws_assemble(plan, simulate(kind, plan, acc_width=width, depth=depth, **options))
    return gemm.decode(raw, width)


def check(kind, gemm, a, b, *, a_signed=True, b_signed=True, **size):
    got = run(kind, gemm, a, b, a_signed=a_signed, b_signed=b_signed, **size)
    want = gemm.reference(a, b, a_signed=a_signed, b_signed=b_signed)
    assert np.array_equal(gemm.result_bits(got), gemm.result_bits(want))


WS_KINDS = {name: kind for name, kind in KINDS.items() if kind.weight_stationary}
EVERY_GEMM = [(kind, gemm) for kind in WS_KINDS.values() for gemm, _ in kind.gemms]


@pytest.mark.parametrize("kind,gemm", EVERY_GEMM, ids=lambda item: item.name)
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_every_gemm_on_every_ws_array(kind, gemm, signed):
    """M, K, N not multiples of the array or the depth; K > R (ascending k round the ring)."""
    rng = np.random.default_rng(kind.order * 10 + list(GEMMS).index(gemm.name) + 100 * signed)
    a, b = gemm.random_operands(rng, 5, 7, 4, a_signed=signed, b_signed=signed)
    check(kind, gemm, a, b, a_signed=signed, b_signed=signed, rows=2, cols=3)


@pytest.mark.parametrize("kind", list(WS_KINDS.values()), ids=lambda kind: kind.name)
@pytest.mark.parametrize("rows,cols,depth", [(1, 1, 1), (3, 2, 5), (2, 2, 6)])
def test_sizes(kind, rows, cols, depth):
    gemm = kind.gemm
    rng = np.random.default_rng(rows * 7 + cols + kind.order)
    a, b = gemm.random_operands(rng, 4, 5, 3, a_signed=False, b_signed=True)
    check(kind, gemm, a, b, a_signed=False, b_signed=True, rows=rows, cols=cols, depth=depth)


@pytest.mark.parametrize("kind", list(WS_KINDS.values()), ids=lambda kind: kind.name)
def test_k_zero_gives_zeros(kind):
    gemm = kind.gemm
    a, b = gemm.random_operands(np.random.default_rng(0), 3, 0, 2)
    got = run(kind, gemm, a, b)
    assert got.shape == (3, 2) and not gemm.result_bits(got).any()


def test_fp16_order_and_signed_zeros():
    """Ascending-k binary32 order across chunks, and K padding that keeps -0 (a PE without a valid
    weight passes the partial sum on, instead of adding +0)."""
    kind = WS_KINDS[next(name for name, k in WS_KINDS.items() if k.is_float)]
    gemm = kind.gemm
    rng = np.random.default_rng(9)
    a = (rng.standard_normal((3, 7)) * 50).astype(np.float16)
    b = (rng.standard_normal((7, 4)) * 50).astype(np.float16)
    a[0] = np.float16(1.0)
    b[:, 0] = np.float16(2.0**-14)  # ordering-sensitive: 1 + tiny products
    b[0, 0] = np.float16(2048.0)
    a[1] = np.float16(-0.0)
    b[:, 1] = np.float16(0.0)  # every product -0: the result is -0
    a[2, 3] = np.float16(np.inf)
    b[3, 2] = np.float16(0.0)  # inf * 0: canonical NaN
    check(kind, gemm, a, b, rows=2, cols=3)
    assert run(kind, gemm, a, b, rows=2, cols=3).view(np.uint32)[1, 1] == 0x80000000


def test_accumulator_wraps_at_declared_width():
    """A narrow accumulator (declared max_k respected) wraps like the SPEC PEs beyond it."""
    gemm = next(g for g in GEMMS.values() if "a_signed" in g.signedness)  # UINT4 x UINT4: products up to 225
    kind = dedicated_kind(gemm)
    width = min_acc_width(kind.product_range, 4)
    k = 40
    a, b = np.full((1, k), 15, np.int8), np.full((k, 1), 15, np.int8)
    plan = plan_for(kind, gemm, a, b, a_signed=False, b_signed=False, rows=2, cols=1, depth=3)
    raw = tiling.ws_assemble(plan, simulate(kind, plan, acc_width=width, depth=3, max_k=4))
    assert int(raw[0, 0]) == (225 * k) % (1 << width)


@pytest.mark.parametrize("kind", [k for k in WS_KINDS.values() if not k.is_float], ids=lambda kind: kind.name)
def test_overflow_refused(kind):
    width = min_acc_width(kind.product_range, 512)
    Fragment.get(WeightStationaryArray(kind=kind, rows=1, cols=1, acc_width=width, max_k=512), None)
    with pytest.raises(ValueError, match="can overflow"):
        WeightStationaryArray(kind=kind, rows=1, cols=1, acc_width=width - 1, max_k=512)


@pytest.mark.parametrize(
    "params,error",
    [
        (dict(kind="int8", rows=2, cols=2), ValueError),
        (dict(kind=next(iter(KINDS)), rows=0, cols=2), ValueError),
        (dict(kind=next(iter(KINDS)), rows=2, cols="2"), TypeError),
        (dict(kind=next(iter(KINDS)), rows=3, cols=2, depth=4), ValueError),
        (dict(kind=next(iter(KINDS)), rows=2, cols=2, depth=3.0), TypeError),
        (dict(kind=next(iter(KINDS)), rows=2, cols=2, max_k=0), ValueError),
    ],
)
def test_bad_parameters(params, error):
    with pytest.raises(error):
        WeightStationaryArray(**params)


def test_manifest_and_defaults():
    array = WeightStationaryArray(kind=next(iter(KINDS)), rows=3, cols=2)
    assert array.depth == default_depth(3) == 6 and min_depth(3) == 5
    manifest = array.manifest()
    assert manifest["dataflow"] == "weight-stationary" and manifest["weight_load_cycles"] == 3
    assert "t + 2 + j" in manifest["timing"]
    Fragment.get(array, None)


def test_gemms_back_to_back():
    """Concatenated schedules (every GEMM of a kind, both signedness modes, different shapes) in one run."""
    kind = max(WS_KINDS.values(), key=lambda kind: len(kind.gemms))
    rng = np.random.default_rng(21)
    plans, expected = [], []
    for index, (gemm, _) in enumerate(kind.gemms * 2):
        signed = bool(index % 2)
        a, b = gemm.random_operands(rng, 3 + index, 2 + 2 * index, 4 - index % 2, a_signed=signed, b_signed=signed)
        plans.append(plan_for(kind, gemm, a, b, a_signed=signed, b_signed=signed, rows=2, cols=3, depth=4))
        expected.append((gemm, gemm.reference(a, b, a_signed=signed, b_signed=signed)))
    combined = tiling.ws_concatenate(plans)
    width = kind.default_acc_width
    columns = simulate(kind, combined, acc_width=width, depth=4)
    for plan, part, (gemm, want) in zip(plans, tiling.split_columns(plans, columns), expected):
        got = gemm.decode(tiling.ws_assemble(plan, part), width)
        assert np.array_equal(gemm.result_bits(got), gemm.result_bits(want))


@pytest.mark.parametrize("kind", [k for k in WS_KINDS.values() if k.a_modes and k.b_modes], ids=lambda kind: kind.name)
def test_no_broadcast_growing_with_the_array(kind):
    """Every input port drives a fixed number of loads, whatever the array size: controls, mode
    bits and weight-load controls travel through registers instead of fanning out."""
    import re

    from amaranth.back import verilog

    def port_uses(rows, cols):
        array = WeightStationaryArray(kind=kind, rows=rows, cols=cols)
        text = verilog.convert(array, name="top", emit_src=False)
        ports = [*tiling.WSSchedule.CONTROLS, *kind.a_modes, *kind.b_modes]
        return {p: len(re.findall(rf"(?<![\w$.]){p}(?![\w\[])", text)) for p in ports}

    assert port_uses(2, 2) == port_uses(5, 4)


def test_output_stationary_only_kinds_are_refused():
    for kind in (k for k in KINDS.values() if not k.weight_stationary):
        with pytest.raises(ValueError, match="no weight-stationary array"):
            WeightStationaryArray(kind=kind, rows=2, cols=2)
