"""The unified training PE: INT4 x INT4 forward, FP4 x INT4 backward, one accumulator.

Forward GEMMs (``Y = X W``) multiply INT4/UINT4 activations by INT4/UINT4
weights; backward GEMMs (``dX = dY W^T``, ``dW^T = dY^T X``) multiply radix-4
FP4 gradient codes by INT4/UINT4 operands, which is a shift. Both products are
small signed integers, so one wrapping two's-complement accumulator (and its
adder) serves both: the run-time ``mode`` bit only selects which product feeds
it. The two product rules stay the shared ones of :mod:`golden.formats`
(through :mod:`hw.arith`); the multiplexer costs one 18-bit 2:1 mux per PE,
less than widening the 5 x 5 multiplier to take the shifted FP4 value.

Operand roles (SPEC section 5, ``python -m verify.gemm``): ``a`` is the left
operand (INT4/UINT4 per ``a_signed`` when ``mode`` is 0, an FP4 code when
``mode`` is 1), ``b`` the right operand (INT4/UINT4 per ``b_signed``).
"""

from amaranth.hdl import Mux
from amaranth.lib.wiring import In

from golden.formats import INT4, ProductRange

from .arith import AMARANTH_OPS, INT_OPERAND_RANGE, LOG_PRODUCT_RANGE, log_product
from .integer_mac import IntegerMAC

__all__ = [
    "MODE_INT",
    "MODE_LOG",
    "INT_PRODUCT_RANGE",
    "TRAIN_PRODUCT_RANGE",
    "int_product",
    "train_product",
    "TrainMAC",
]


_CORNERS = (INT_OPERAND_RANGE.lo, INT_OPERAND_RANGE.hi)

#: ``mode`` value of the forward pass: ``a * b``, both INT4/UINT4.
MODE_INT = 0
#: ``mode`` value of the backward pass: ``a`` an FP4 code, ``b`` INT4/UINT4.
MODE_LOG = 1

#: Products of two 4-bit integers over every signedness mode of both (-120..225).
INT_PRODUCT_RANGE = ProductRange(
    min(x * y for x in _CORNERS for y in _CORNERS), max(x * y for x in _CORNERS for y in _CORNERS)
)
#: Products of the train PE over both modes: the union of the two rules' ranges.
TRAIN_PRODUCT_RANGE = INT_PRODUCT_RANGE.union(LOG_PRODUCT_RANGE)


def int_product(a, b, a_signed, b_signed):
    """``a * b`` with each operand INT4 or UINT4 per its run-time mode bit."""
    return INT4.scale(b, INT4.value(a, AMARANTH_OPS, signed=a_signed), AMARANTH_OPS, signed=b_signed)


def train_product(a, b, mode, a_signed, b_signed):
    """The train PE's product: :func:`int_product` when ``mode`` is 0, else
    ``(-1)^s * b * 4^(e-1)`` with ``a`` the FP4 code (``a_signed`` ignored)."""
    return Mux(mode, log_product(b, a, b_signed), int_product(a, b, a_signed, b_signed))


class TrainMAC(IntegerMAC):
    """Standalone unified training PE: ``acc += a * b`` or ``acc += fp4(a) * b`` by ``mode``.

    Parameters
    ----------
    acc_width : int
        Accumulator width (default 32, as ``log_mac``).
    pipeline : int
        Register stages between the product and the accumulator (default 0).
    min_k : int
        Products (of either mode) the accumulator must hold without overflow (default 1).

    Attributes
    ----------
    a : Signal(4), in
        INT4/UINT4 code (``mode`` 0) or FP4 code (``mode`` 1).
    b : Signal(4), in
        INT4/UINT4 code per ``b_signed``.
    a_signed, b_signed : Signal(1), in
        Signedness modes of ``a`` (forward pass only) and ``b``.
    mode : Signal(1), in
        0: INT4 x INT4 (forward), 1: FP4 x INT4 (backward).
    valid, clear : Signal(1), in
        Accumulation controls (SPEC section 3).
    acc : Signal(signed(acc_width)), out
        Registered, wrapping accumulator shared by both modes.
    """

    module_name = "train_mac"
    product_range = TRAIN_PRODUCT_RANGE

    def __init__(self, *, acc_width=32, pipeline=0, min_k=1):
        super().__init__(acc_width=acc_width, pipeline=pipeline, min_k=min_k)

    def operand_ports(self):
        return {"a": In(4), "b": In(4), "a_signed": In(1), "b_signed": In(1), "mode": In(1)}

    def product(self):
        return train_product(self.a, self.b, self.mode, self.a_signed, self.b_signed)
