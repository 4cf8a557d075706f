"""The Amaranth backend evaluates the shared product rules exactly as the torch backend does."""

import itertools

import pytest
import torch
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from golden.formats import ProductRange
from golden.reference import int_products, log_products
from hw.arith import max_safe_k, min_acc_width
from hw.kinds import int4, log

INT4_PRODUCT_RANGE = int4.STANDALONE_PRODUCT_RANGE
LOG_PRODUCT_RANGE = log.PRODUCT_RANGE


def simulate_products():
    a, b, mode = Signal(4), Signal(4), Signal()
    m = Module()
    # int4_mac's product (b is INT4) and log_mac's (x = a with x_signed = mode, g = b).
    exprs = {
        "int4": int4.KIND.product(m, a, b, {"a_signed": mode, "b_signed": True}, prefix="mul"),
        "log": log.KIND.product(m, b, a, {"b_signed": mode}, prefix="mul"),
    }
    outs = {}
    for name, expr in exprs.items():
        outs[name] = Signal(expr.shape(), name=name)
        m.d.comb += outs[name].eq(expr)
    rows = []

    async def bench(ctx):
        for s, x, y in itertools.product([0, 1], range(16), range(16)):
            ctx.set(a, x)
            ctx.set(b, y)
            ctx.set(mode, s)
            rows.append((s, x, y, ctx.get(outs["int4"]), ctx.get(outs["log"])))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return torch.tensor(rows), exprs


def test_every_operand_pair_both_modes():
    rows, exprs = simulate_products()
    mode, x, y = rows[:, 0].bool(), rows[:, 1], rows[:, 2]
    assert torch.equal(rows[:, 3], int_products(x, y, a_signed=mode))
    assert torch.equal(rows[:, 4], log_products(y, x, x_signed=mode))
    # The declared ranges are the exact extremes.
    assert (rows[:, 3].min().item(), rows[:, 3].max().item()) == (INT4_PRODUCT_RANGE.lo, INT4_PRODUCT_RANGE.hi)
    assert (rows[:, 4].min().item(), rows[:, 4].max().item()) == (LOG_PRODUCT_RANGE.lo, LOG_PRODUCT_RANGE.hi)
    # Product widths are minimal: 9 bits for -120..105, 18 bits for +-61440.
    assert exprs["int4"].shape().width == 9 and exprs["log"].shape().width == 18


def test_overflow_bounds():
    # SPEC default widths: int4_mac 24 bits, log_mac 32 bits.
    assert max_safe_k(INT4_PRODUCT_RANGE, 24) == 2**23 // 120
    assert max_safe_k(LOG_PRODUCT_RANGE, 32) == (2**31 - 1) // 61440
    assert min_acc_width(INT4_PRODUCT_RANGE, 1) == 8
    for k in (1, 7, 512, 69905):
        w = min_acc_width(INT4_PRODUCT_RANGE, k)
        assert max_safe_k(INT4_PRODUCT_RANGE, w) >= k > max_safe_k(INT4_PRODUCT_RANGE, w - 1)
    with pytest.raises(ValueError, match="positive integer"):
        max_safe_k(INT4_PRODUCT_RANGE, 0)
    with pytest.raises(ValueError, match="positive integer"):
        min_acc_width(INT4_PRODUCT_RANGE, 0)
    with pytest.raises(ValueError, match="empty"):
        ProductRange(1, 0)
