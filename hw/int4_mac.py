"""``int4_mac``: INT4/UINT4 x INT4 multiply-accumulate (SPEC section 3)."""

from amaranth.lib.wiring import In

from .arith import INT4_PRODUCT_RANGE, int4_product
from .integer_mac import IntegerMAC

__all__ = ["Int4MAC"]


class Int4MAC(IntegerMAC):
    """``acc += a * b`` with ``a`` INT4 or UINT4 (run-time ``a_signed``) and ``b`` INT4.

    Parameters
    ----------
    acc_width : int
        Accumulator width (default 24).
    pipeline : int
        Register stages between the multiplier and the accumulator (default 0).
    min_k : int
        Products the accumulator must hold without overflow (default 1).

    Attributes
    ----------
    a : Signal(4), in
        INT4 code when ``a_signed`` is 1, else UINT4.
    b : Signal(4), in
        INT4 code.
    a_signed : Signal(1), in
        Signedness mode of ``a``.
    valid, clear : Signal(1), in
        Accumulation controls.
    acc : Signal(signed(acc_width)), out
        Registered, wrapping accumulator.
    """

    module_name = "int4_mac"
    product_range = INT4_PRODUCT_RANGE

    def __init__(self, *, acc_width=24, pipeline=0, min_k=1):
        super().__init__(acc_width=acc_width, pipeline=pipeline, min_k=min_k)

    def operand_ports(self):
        return {"a": In(4), "b": In(4), "a_signed": In(1)}

    def product(self):
        return int4_product(self.a, self.b, self.a_signed)
