"""Per-element post-operations of a training step, as standalone units for the energy report.

The 4-bit datapath (:mod:`hw.datapath.top`) follows each drained dX element
with ``POST_GRAD``: the gradient is zeroed outside the straight-through mask
and its magnitude enters the amax register that GradScale reads.
:class:`GradPost` is that element operation alone.

An FP16 training datapath doing the same GEMMs needs, instead of the integer
requantizer and the FP4 encoder, a cast of each binary32 accumulator to the
binary16 its next GEMM reads: in the forward pass after the ReLU/PACT clamp
(with the same straight-through masks), in the backward pass after the mask
of the layer below. :class:`FP16Post` is that element operation.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .._params import check_int
from ..fp import fp32_to_fp16

__all__ = ["GradPost", "FP16Post"]


class GradPost(wiring.Component):
    """The 4-bit datapath's ``POST_GRAD`` on one element: mask, then amax.

    Parameters
    ----------
    value_width : int
        Signed width of the gradient element (default 40, the datapath's accumulator plus bias).
    amax_width : int
        Width of the amax register (default 48, the datapath's gradient word).

    Attributes
    ----------
    value : Signal(signed(value_width)), in
        dX element as drained.
    keep : Signal(1), in
        Its straight-through mask bit (0 zeroes it).
    clear : Signal(1), in
        Start a new tensor: amax := 0 (the datapath's ``CMD_CLEAR``).
    masked : Signal(signed(value_width)), out
        ``value`` where ``keep``, else 0 (combinational).
    amax : Signal(amax_width), out
        The largest ``|masked|`` since ``clear`` (a register).
    """

    #: ``masked`` is combinational (``amax`` a register one cycle behind).
    latency = 0

    def __init__(self, *, value_width=40, amax_width=48):
        try:
            self.value_width = check_int("grad_post", "value_width", value_width, minimum=2)
            self.amax_width = check_int("grad_post", "amax_width", amax_width, minimum=value_width)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # refused, not unused
            raise
        super().__init__(
            {
                "value": In(signed(self.value_width)),
                "keep": In(1),
                "clear": In(1),
                "masked": Out(signed(self.value_width)),
                "amax": Out(self.amax_width),
            }
        )

    def elaborate(self, platform):
        m = Module()
        amax = Signal(self.amax_width)
        m.d.comb += [self.masked.eq(Mux(self.keep, self.value, 0)), self.amax.eq(amax)]
        magnitude = Mux(self.masked < 0, -self.masked, self.masked)[: self.amax_width]
        with m.If(self.clear):
            m.d.sync += amax.eq(magnitude)
        with m.Elif(magnitude > amax):
            m.d.sync += amax.eq(magnitude)
        return m


class FP16Post(wiring.Component):
    """An FP16 datapath's element post-operation: clamp or mask, then round the binary32 accumulator to binary16.

    With ``relu`` (forward): ``y = fp16(clamp(x, 0, alpha))``, ``inside =
    0 < x < alpha``, ``saturated = x >= alpha`` (PACT's masks, as the 4-bit
    requantizer gives them); without (backward): ``y = fp16(x)`` where
    ``keep``, else +0. The compares are integer compares of the binary32
    patterns (positive finite binary32 numbers order like their encodings);
    ``alpha`` is a positive finite binary32. A positive NaN saturates, a
    negative one clamps to 0; unclamped, a NaN becomes ``0x7E00`` (:func:`hw.fp.fp32_to_fp16`).

    Attributes
    ----------
    x : Signal(32), in
        binary32 accumulator.
    alpha : Signal(32), in
        binary32 PACT clip (forward).
    relu : Signal(1), in
        1: forward clamp; 0: backward mask.
    keep : Signal(1), in
        Backward: the element's mask bit (0 gives +0).
    y : Signal(16), out
        binary16 result.
    inside, saturated : Signal(1), out
        Forward: the straight-through masks (0 in the backward mode).
    """

    #: Combinational: outputs follow the inputs in the same cycle.
    latency = 0

    def __init__(self):
        super().__init__(
            {
                "x": In(32),
                "alpha": In(32),
                "relu": In(1),
                "keep": In(1),
                "y": Out(16),
                "inside": Out(1),
                "saturated": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        positive = ~self.x[31] & (self.x[:31] != 0)
        saturated = Signal(name="post_saturated")
        m.d.comb += saturated.eq(self.relu & ~self.x[31] & (self.x[:31] >= self.alpha[:31]))
        value = Signal(32, name="post_value")
        with m.If(self.relu):
            m.d.comb += value.eq(Mux(saturated, self.alpha, Mux(positive, self.x, 0)))
        with m.Else():
            m.d.comb += value.eq(Mux(self.keep, self.x, Cat(Const(0, 32))))
        m.d.comb += [
            self.y.eq(fp32_to_fp16(m, value, prefix="post")),
            self.saturated.eq(saturated),
            self.inside.eq(self.relu & positive & ~saturated),
        ]
        return m
