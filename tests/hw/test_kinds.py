"""The PE-kind registry: discovery, and every kind's rules checked generically.

A new kind (one module in hw/kinds) is picked up by every test here without
naming it: its product rule against the golden model over every code and
mode, its declared product ranges, its GEMMs' operand checks and results.
"""

import itertools

import numpy as np
import pytest
import torch
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.array import SystolicArray
from hw.kinds import GEMMS, KINDS, GemmInputError, baseline_kind, dedicated_kind, default_kind, get_gemm, get_kind
from hw.kinds.base import IntegerKind

INTEGER_KINDS = [kind for kind in KINDS.values() if isinstance(kind, IntegerKind)]


def test_discovery():
    assert list(KINDS) == [kind.name for kind in sorted(KINDS.values(), key=lambda k: k.order)]
    assert len({kind.info_code for kind in KINDS.values()}) == len(KINDS)
    assert default_kind() is next(iter(KINDS.values()))
    assert baseline_kind().is_float
    for gemm in GEMMS.values():
        assert dedicated_kind(gemm).gemm is gemm
    for kind in KINDS.values():
        assert kind.runs(kind.gemm) and kind.gemms[0][0] is kind.gemm
        assert set(kind.workloads) == {kind.gemm_for(w).workload or w for w in kind.workloads}


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown PE kind 'int8'"):
        get_kind("int8")
    with pytest.raises(GemmInputError, match="unknown --pe 'int8'"):
        get_gemm("int8")


def _combinations(kind):
    """Every pair of 4-bit codes under every combination of the kind's mode bits."""
    modes = kind.a_modes + kind.b_modes
    rows = list(itertools.product(range(16), range(16), *[range(2)] * len(modes)))
    columns = list(zip(*rows))
    return torch.tensor(columns[0]), torch.tensor(columns[1]), {m: torch.tensor(c) for m, c in zip(modes, columns[2:])}


def _hardware_products(kind, a_values, b_values, mode_values):
    a, b = Signal(kind.a_width), Signal(kind.b_width)
    modes = {name: Signal(name=name) for name in mode_values}
    m = Module()
    expr = kind.product(m, a, b, modes, prefix="mul")
    out = Signal(expr.shape())
    m.d.comb += out.eq(expr)
    got = []

    async def bench(ctx):
        for i in range(len(a_values)):
            ctx.set(a, int(a_values[i]))
            ctx.set(b, int(b_values[i]))
            for name, values in mode_values.items():
                ctx.set(modes[name], int(values[i]))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return torch.tensor(got)


@pytest.mark.parametrize("kind", INTEGER_KINDS, ids=lambda kind: kind.name)
def test_hardware_product_is_the_golden_product(kind):
    a, b, modes = _combinations(kind)
    hardware = _hardware_products(kind, a, b, modes)
    golden = kind.golden_products(a, b, modes)
    assert torch.equal(hardware, golden)
    # The declared product range is exactly the extremes over every code and mode.
    assert (int(golden.min()), int(golden.max())) == (kind.product_range.lo, kind.product_range.hi)


@pytest.mark.parametrize("kind", INTEGER_KINDS, ids=lambda kind: kind.name)
def test_zero_rule_is_sound_and_finds_every_zero_operand(kind):
    """The lean PEs skip the accumulator where the zero rule holds: it must imply a zero product.

    And it must catch every operand that zeroes the product whatever the other
    is (the point of the rule): an A code whose products are all 0 under some
    modes, and likewise for B.
    """
    from golden.formats import TORCH_OPS

    a, b, modes = _combinations(kind)
    zero = kind.zero_rule(TORCH_OPS, a, b, {name: values.bool() for name, values in modes.items()})
    assert zero is not None, f"{kind.name}: an integer kind needs a zero rule for the lean PEs"
    golden = kind.golden_products(a, b, modes)
    assert not torch.any(zero & (golden != 0))
    for operand in (a, b):
        for code in range(16):
            for mode_values in itertools.product(*[range(2)] * len(modes)):
                pick = operand == code
                for values, value in zip(modes.values(), mode_values):
                    pick &= values == value
                if torch.all(golden[pick] == 0):
                    assert torch.all(zero[pick]), f"{kind.name}: code {code} always gives 0 but is not skipped"


@pytest.mark.parametrize("kind", [k for k in INTEGER_KINDS if k.standalone], ids=lambda kind: kind.name)
def test_standalone_product_range(kind):
    a, b, modes = _combinations(kind)
    top = kind.standalone
    keep = torch.ones(len(a), dtype=torch.bool)
    for name, value in top.fixed_modes.items():
        keep &= modes[name] == int(value)
    golden = kind.golden_products(a[keep], b[keep], {name: values[keep] for name, values in modes.items()})
    assert (int(golden.min()), int(golden.max())) == (top.product_range.lo, top.product_range.hi)
    roles = {role for _, role, _ in top.ports} | set(top.fixed_modes)
    assert roles == {"a", "b", *kind.a_modes, *kind.b_modes}


def _simulate_gemm(kind, gemm, a, b, *, a_signed, b_signed, rows=2, cols=3, **scales):
    """``gemm`` on an Amaranth-simulated array of ``kind``; the decoded result (``scales``: a scaled GEMM's)."""
    from hw import tiling

    a_bits, b_bits = gemm.operand_bits(a, b, a_signed=a_signed, b_signed=b_signed, **scales)
    width = kind.acc_width_for(a.shape[1])
    dut = SystolicArray(kind=kind, rows=rows, cols=cols, acc_width=width, max_k=kind.max_k(width) or 1)
    plan = tiling.schedule(a_bits, b_bits, rows, cols)
    a_words, b_words = tiling.pack_words(plan.a_words, kind.a_width), tiling.pack_words(plan.b_words, kind.b_width)
    columns = [[] for _ in range(cols)]

    async def bench(ctx):
        for name, value in kind.mode_inputs(gemm, a_signed=a_signed, b_signed=b_signed).items():
            ctx.set(getattr(dut, name), value)
        for cycle in range(plan.cycles + 4 * rows + cols + 8):
            busy = cycle < plan.cycles
            ctx.set(dut.a_in, a_words[cycle] if busy else 0)
            ctx.set(dut.b_in, b_words[cycle] if busy else 0)
            ctx.set(dut.valid, int(plan.valid[cycle]) if busy else 0)
            ctx.set(dut.clear, int(plan.clear[cycle]) if busy else 0)
            ctx.set(dut.last, int(plan.last[cycle]) if busy else 0)
            await ctx.tick()
            valid, data = ctx.get(dut.out_valid), ctx.get(dut.out_data)
            for j in range(cols):
                if valid >> j & 1:
                    columns[j].append((data >> (j * width)) & ((1 << width) - 1))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    raw = tiling.assemble(plan, [np.array(c, dtype=np.uint64) for c in columns])
    return gemm.decode(raw, width)


@pytest.mark.parametrize(
    "kind,gemm",
    [(kind, gemm) for kind in KINDS.values() for gemm, _ in kind.gemms],
    ids=lambda item: item.name,
)
def test_every_gemm_on_every_array_that_runs_it(kind, gemm):
    rng = np.random.default_rng(kind.order * 10 + list(GEMMS).index(gemm.name))
    for a_signed, b_signed in ((True, True), (False, False)):
        inputs = gemm.random_inputs(rng, 3, 5, 4, a_signed=a_signed, b_signed=b_signed)
        got = _simulate_gemm(kind, gemm, **inputs, a_signed=a_signed, b_signed=b_signed)
        want = gemm.reference(**inputs, a_signed=a_signed, b_signed=b_signed)
        assert np.array_equal(gemm.result_bits(got), gemm.result_bits(want))


@pytest.mark.parametrize("gemm", list(GEMMS.values()), ids=lambda gemm: gemm.name)
def test_operand_errors(gemm):
    inputs = gemm.random_inputs(np.random.default_rng(0), 2, 3, 2)
    a, b = inputs.pop("a"), inputs.pop("b")
    with pytest.raises(GemmInputError, match="inner dimensions differ"):
        gemm.operand_bits(a, b[:2], **inputs)
    with pytest.raises(GemmInputError, match="2-D matrix"):
        gemm.operand_bits(a[0], b, **inputs)
    wrong = np.full(a.shape, 99, dtype=np.int64) if not gemm.is_float or gemm.scaled else a.astype(np.float32)
    with pytest.raises(GemmInputError):
        gemm.operand_bits(wrong, b, **inputs)
    # Block scales go with the scaled GEMMs only, and those need both.
    if gemm.scaled:
        with pytest.raises(GemmInputError, match="needs the block scales"):
            gemm.operand_bits(a, b, a_scales=inputs["a_scales"])
    else:
        with pytest.raises(GemmInputError, match="takes no block scales"):
            gemm.operand_bits(a, b, a_scales=np.zeros((2, 1), np.uint8), b_scales=np.zeros((1, 2), np.uint8))


def test_a_kind_refuses_a_gemm_it_does_not_run():
    for kind in KINDS.values():
        for gemm in GEMMS.values():
            if not kind.runs(gemm):
                with pytest.raises(GemmInputError, match=f"the {kind.name} array runs .* GEMMs, not {gemm.name}"):
                    kind.mode_inputs(gemm)


def test_recipes_are_golden_recipes_each_on_one_kind():
    from golden.recipes import RECIPES

    claimed = [recipe for kind in KINDS.values() for recipe in kind.recipes]
    assert set(claimed) <= set(RECIPES) and len(claimed) == len(set(claimed))
    assert baseline_kind().recipes == ("fp32",)
