"""Shared checks of the block-scaled kinds (mxfp4, nvfp4): the term rounding and multi-block arrays."""

import numpy as np
import torch
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.kinds._blockfp import fp32_from_scaled_integer

from ..test_kinds import _simulate_gemm


def simulate_terms(values, exponents, negates, *, value_bits, exponent_bits, offset):
    """fp32_from_scaled_integer on the Amaranth simulator: one binary32 pattern per case."""
    m = Module()
    value, exponent, negate = Signal(signed(value_bits)), Signal(unsigned(exponent_bits)), Signal()
    out = fp32_from_scaled_integer(m, value, exponent, offset=offset, negate=negate, prefix="t")
    got = []

    async def bench(ctx):
        for v, e, n in zip(values, exponents, negates):
            ctx.set(value, int(v))
            ctx.set(exponent, int(e))
            ctx.set(negate, int(n))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return np.array(got, dtype=np.uint64)


def exact_terms(values, exponents, negates, offset):
    """The same terms from float64 (exact: small integers times powers of two) cast once to float32."""
    sign = np.where(np.asarray(negates) == 1, -1.0, 1.0)
    exact = np.ldexp(np.asarray(values, dtype=np.float64) * sign, np.asarray(exponents) - offset)
    bits = torch.from_numpy(exact).to(torch.float32).numpy().view(np.uint32).astype(np.uint64)
    # A zero term is +0 whatever the signs (it cannot change a sum that starts from +0).
    return np.where(np.asarray(values) == 0, 0, bits)


def check_gemm(kind, inputs, *, rows=2, cols=3):
    gemm = kind.gemm
    got = _simulate_gemm(kind, gemm, **inputs, a_signed=True, b_signed=True, rows=rows, cols=cols)
    want = gemm.reference(**inputs)
    assert np.array_equal(gemm.result_bits(got), gemm.result_bits(want))
    return gemm.result_bits(want)
