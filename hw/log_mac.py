"""``log_mac``: INT4/UINT4 x radix-4 FP4 shift-accumulate (SPEC section 3)."""

from amaranth.lib.wiring import In

from .arith import LOG_PRODUCT_RANGE, log_product
from .integer_mac import IntegerMAC

__all__ = ["LogMAC"]


class LogMAC(IntegerMAC):
    """``acc += (-1)^s * x * 4^(e-1)`` (0 when ``e == 0``): a shift, no multiplier.

    Parameters
    ----------
    acc_width : int
        Accumulator width (default 32).
    pipeline : int
        Register stages between the shifter and the accumulator (default 0).
    min_k : int
        Products the accumulator must hold without overflow (default 1).

    Attributes
    ----------
    x : Signal(4), in
        INT4 code when ``x_signed`` is 1, else UINT4.
    x_signed : Signal(1), in
        Signedness mode of ``x``.
    g : Signal(4), in
        FP4 code: bit 3 sign ``s``, bits 2..0 exponent ``e``.
    valid, clear : Signal(1), in
        Accumulation controls.
    acc : Signal(signed(acc_width)), out
        Registered, wrapping accumulator.
    """

    module_name = "log_mac"
    product_range = LOG_PRODUCT_RANGE

    def __init__(self, *, acc_width=32, pipeline=0, min_k=1):
        super().__init__(acc_width=acc_width, pipeline=pipeline, min_k=min_k)

    def operand_ports(self):
        return {"x": In(4), "x_signed": In(1), "g": In(4)}

    def product(self):
        return log_product(self.x, self.g, self.x_signed)
