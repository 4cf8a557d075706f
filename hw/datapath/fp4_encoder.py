"""GradScale and the radix-4 FP4 TPR encoder on integer gradients (SPEC section 1), no floating point.

For an integer tensor ``v`` (the accumulator counts of the gradient's unit)
with ``amax = max |v| > 0``:

* GradScale: ``k`` = the smallest integer with ``2^k >= amax`` =
  ``bit_length(amax - 1)`` (leading-one detection), ``S = unit * 2^k``.
* Phase ``p``: ``m = |v| / 2^(k-p)``; level ``e`` is the number of
  boundaries ``m`` reaches (ties away from zero): ``2^-13`` (zero / level 1)
  and ``2.5 * 4^(e-7)`` for ``e = 1..6``. Multiplied through by
  ``2^(15+p)`` every compare is an integer compare:
  ``|v| << (15+p) >= 1 << (k+2)`` and ``|v| << (15+p) >= 5 << (k+2e)``,
  evaluated as ``(|v| << (15+p)) >> (k+2) != 0`` and ``... >> (k+2e) >= 5``
  (equal, the bounds being multiples of the shifted-out powers of two).
* ``code = e | sign << 3``, the sign only when ``e > 0``.

:func:`grad_exponent` and :func:`fp4_encode` build the logic inside a module;
:class:`FP4Encoder` is the standalone component (both phases of one value).
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .._params import check_int

__all__ = ["EXP_LEVELS", "k_width", "grad_exponent", "fp4_encode", "FP4Encoder"]

#: Exponent levels of radix-4 FP4 (e = 1..7).
EXP_LEVELS = 7


def k_width(value_width):
    """Bits of the GradScale exponent of a ``value_width``-bit signed tensor."""
    return max(1, value_width.bit_length())


def grad_exponent(m, amax, width):
    """``k = bit_length(amax - 1)`` (0 for ``amax <= 1``): the GradScale exponent, by leading-one detection."""
    below = Signal(unsigned(len(amax)), name="gs_below")
    m.d.comb += below.eq(Mux(amax == 0, 0, amax - 1))
    k = Signal(unsigned(width), name="gs_k")
    for i in range(len(amax)):  # later assignments win: the highest set bit decides
        with m.If(below[i]):
            m.d.comb += k.eq(i + 1)
    return k


def fp4_encode(m, value, k, phase, *, name="enc"):
    """FP4 code (4 bits) of the signed integer ``value`` in TPR phase ``phase`` (0 or 1) given GradScale ``k``."""
    width = len(value)
    magnitude = Signal(unsigned(width), name=f"{name}_mag")
    m.d.comb += magnitude.eq(Mux(value < 0, -value, value))
    scaled = Signal(unsigned(width + 16), name=f"{name}_scaled")
    m.d.comb += scaled.eq(magnitude << (15 + phase))
    passed = []
    for level in range(EXP_LEVELS):
        # scaled >= c << s  <=>  (scaled >> s) >= c, as c << s is a multiple of 2^s: the compare
        # stays as wide as `scaled` (the bound itself would be 3 + 2^width(k) bits, which a
        # simulator evaluates in wide-word arithmetic on every cycle).
        if level == 0:
            reached = (scaled >> (k + 2)) != 0
        else:
            reached = (scaled >> (k + 2 * level)) >= 5
        hit = Signal(name=f"{name}_ge{level}")
        m.d.comb += hit.eq(reached)
        passed.append(hit)
    e = Signal(3, name=f"{name}_e")
    m.d.comb += e.eq(sum(passed))
    code = Signal(4, name=f"{name}_code")
    m.d.comb += code.eq(Mux(e == 0, 0, e | ((value < 0).as_unsigned() << 3)))
    return code


class FP4Encoder(wiring.Component):
    """Standalone GradScale + two-phase FP4 encoder (combinational).

    Parameters
    ----------
    value_width : int
        Signed width of the gradient values (default 48).

    Attributes
    ----------
    value : Signal(signed(value_width)), in
        One gradient count.
    amax : Signal(value_width), in
        ``max |v|`` of the whole tensor.
    k : Signal(k_width), out
        GradScale exponent (``S = unit * 2^k``).
    code0, code1 : Signal(4), out
        FP4 codes of ``value`` in TPR phase 0 and 1.
    """

    #: Combinational: outputs follow the inputs in the same cycle.
    latency = 0

    def __init__(self, *, value_width=48):
        try:
            self.value_width = check_int("fp4_encoder", "value_width", value_width, minimum=2)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # refused, not unused
            raise
        self.k_bits = k_width(self.value_width)
        super().__init__(
            {
                "value": In(signed(self.value_width)),
                "amax": In(self.value_width),
                "k": Out(self.k_bits),
                "code0": Out(4),
                "code1": Out(4),
            }
        )

    def elaborate(self, platform):
        m = Module()
        k = grad_exponent(m, self.amax, self.k_bits)
        m.d.comb += [
            self.k.eq(k),
            self.code0.eq(fp4_encode(m, self.value, k, 0, name="p0")),
            self.code1.eq(fp4_encode(m, self.value, k, 1, name="p1")),
        ]
        return m
