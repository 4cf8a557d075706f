"""Integer requantizer: accumulator -> UINT4 code and the PACT straight-through masks.

The hardware form of :func:`golden.requant.requantize_pact` (SPEC section 2):
``prod = total * M0``, ``code = clamp((prod + 2^(shift-1)) >> shift, 0, 15)``
(arithmetic shift, round half up), ``saturated = prod >= 15 << shift``,
``inside = total > 0 and not saturated``. ``(M0, shift)`` come from the host
(:func:`golden.requant.requant_params`); the unit is purely combinational and
placed once per array column, where the drained accumulators leave the array.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from golden.requant import QMAX

from .._params import check_int

__all__ = ["M0_BITS", "SHIFT_BITS", "requantize", "Requantizer"]

#: Width of the fixed-point multiplier M0 (2^15 <= M0 < 2^16).
M0_BITS = 16
#: Width of the shift (1..62).
SHIFT_BITS = 6


def requantize(m, total, m0, shift):
    """Combinational requantizer in module ``m``; returns ``(code, inside, saturated)``.

    Parameters
    ----------
    m : Module
    total : Value, signed
        Accumulator plus bias.
    m0 : Value, unsigned(16)
    shift : Value, unsigned(6); must be >= 1 (the host function guarantees 1..62; 0 is undefined)
    """
    # Plain expressions (no named intermediates, which Yosys would leave unread), each at most
    # 64 bits wide: a simulator then computes them in machine words (Verilator's wide-word
    # arithmetic on the 67-bit `prod >= 15 << shift` and the 66-bit rounding cost most of the
    # datapath's simulation time), and synthesis builds no wider compare than it needs.
    prod = total * m0  # signed, |prod| < 2^(width(total) - 1 + 16)
    # 2^(shift - 1) for shift = 1..62 (the host's range); shift = 63 gives 0, which changes no
    # result (prod + 2^62 < 2^63, so the shift leaves 0 or -1 either way, both code 0).
    half = (Const(1, 62) << (shift - 1)[:SHIFT_BITS])[:62]
    rounded = (prod + half) >> shift  # signed 64 bits: |prod| + half < 2^63
    saturated = Signal(name="rq_saturated")
    inside = Signal(name="rq_inside")
    code = Signal(4, name="rq_code")
    m.d.comb += [
        # prod >= 15 * 2^shift  <=>  floor(prod / 2^shift) >= 15 (the bound is a multiple of 2^shift).
        saturated.eq((prod >> shift) >= QMAX),
        inside.eq((total > 0) & ~saturated),
        code.eq(Mux(rounded < 0, 0, Mux(rounded > QMAX, QMAX, rounded[:4]))),
    ]
    return code, inside, saturated


class Requantizer(wiring.Component):
    """Standalone requantizer (combinational), for unit tests and synthesis.

    Parameters
    ----------
    total_width : int
        Signed width of the accumulator-plus-bias input (default 40, the
        golden model's ``ACC_BITS_MAX``).

    Attributes
    ----------
    total : Signal(signed(total_width)), in
    m0 : Signal(16), in
    shift : Signal(6), in
        1..62.
    code : Signal(4), out
        UINT4 code.
    inside : Signal(1), out
        Straight-through region ``0 < x < alpha``.
    saturated : Signal(1), out
        ``x >= alpha`` (counts towards d/dalpha).
    """

    #: Combinational: outputs follow the inputs in the same cycle.
    latency = 0

    def __init__(self, *, total_width=40):
        try:
            self.total_width = check_int("requantizer", "total_width", total_width, minimum=2)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # refused, not unused
            raise
        super().__init__(
            {
                "total": In(signed(self.total_width)),
                "m0": In(M0_BITS),
                "shift": In(SHIFT_BITS),
                "code": Out(4),
                "inside": Out(1),
                "saturated": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        code, inside, saturated = requantize(m, self.total, self.m0, self.shift)
        m.d.comb += [self.code.eq(code), self.inside.eq(inside), self.saturated.eq(saturated)]
        return m
