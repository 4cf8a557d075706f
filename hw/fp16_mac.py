"""``fp16_mac``: the FP16 x FP16 -> FP32 baseline processing element (SPEC section 3)."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._params import check_int
from .accumulate import fp32_accumulate
from .fp import fp16_product
from .pipeline import delay

__all__ = ["FP16MAC"]


class FP16MAC(wiring.Component):
    """Binary16 multiply, binary32 accumulate, IEEE 754 round to nearest even.

    ``prod = fp32(a) * fp32(b)`` is exact; each accumulation is one binary32
    addition with one rounding (subnormals in and out, overflow to infinity,
    signed zeros, canonical NaN ``0x7FC00000``). Synchronous active-high reset
    ``rst`` sets ``acc`` to +0.0.

    Parameters
    ----------
    pipeline : int
        Register stages between the multiplier and the adder (default 0).
        The latency from inputs to ``acc`` is ``1 + pipeline`` cycles.

    Attributes
    ----------
    a, b : Signal(16), in
        Binary16 operands.
    valid : Signal(1), in
        Accumulate ``prod`` this cycle.
    clear : Signal(1), in
        Restart the accumulation (with ``valid``: ``acc <= prod``; without: ``acc <= +0``).
    acc : Signal(32), out
        Binary32 accumulator (registered).
    """

    def __init__(self, *, pipeline=0):
        try:
            self.pipeline = check_int("fp16_mac", "pipeline", pipeline, minimum=0)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # a rejected component is not an unused one
            raise
        super().__init__(
            {
                "a": In(16),
                "b": In(16),
                "valid": In(1),
                "clear": In(1),
                "acc": Out(32),
            }
        )

    @property
    def latency(self):
        """Cycles from an input edge to its effect on ``acc``."""
        return 1 + self.pipeline

    def elaborate(self, platform):
        m = Module()
        prod = delay(m, fp16_product(m, self.a, self.b), self.pipeline, name="prod")
        valid = delay(m, self.valid, self.pipeline, name="valid")
        clear = delay(m, self.clear, self.pipeline, name="clear")
        m.d.sync += self.acc.eq(fp32_accumulate(m, self.acc, prod, valid, clear))
        return m
