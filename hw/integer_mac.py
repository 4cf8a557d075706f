"""Common structure of the integer-accumulating PEs (``int4_mac``, ``log_mac``)."""

from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._params import check_int
from .accumulate import integer_accumulate
from .arith import max_safe_k
from .pipeline import delay

__all__ = ["IntegerMAC"]


class IntegerMAC(wiring.Component):
    """A product feeding a wrapping two's-complement accumulator.

    Subclasses name the module (:attr:`module_name`), the operand ports
    (:meth:`operand_ports`), the product (:meth:`product`) and its range
    (:attr:`product_range`).

    Parameters
    ----------
    acc_width : int
        Accumulator width in bits.
    pipeline : int
        Register stages between the product and the accumulator (default 0);
        the latency is ``1 + pipeline`` cycles.
    min_k : int
        Number of maximal-magnitude products the accumulator must hold without
        overflow (default 1); a narrower ``acc_width`` is a ValueError.

    Attributes
    ----------
    valid, clear : Signal(1), in
        Accumulation controls (SPEC section 3).
    acc : Signal(signed(acc_width)), out
        Registered accumulator; wraps modulo ``2**acc_width``.
    max_k : int
        Largest K such that any K products cannot overflow ``acc``.
    """

    module_name = None
    product_range = None

    def __init__(self, *, acc_width, pipeline=0, min_k=1):
        try:
            self._check_parameters(acc_width, pipeline, min_k)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # a rejected component is not an unused one
            raise
        super().__init__(
            {
                **self.operand_ports(),
                "valid": In(1),
                "clear": In(1),
                "acc": Out(signed(acc_width)),
            }
        )

    def _check_parameters(self, acc_width, pipeline, min_k):
        owner = self.module_name
        self.acc_width = check_int(owner, "acc_width", acc_width, minimum=1)
        self.pipeline = check_int(owner, "pipeline", pipeline, minimum=0)
        self.min_k = check_int(owner, "min_k", min_k, minimum=1)
        self.max_k = max_safe_k(self.product_range, acc_width)
        if self.max_k < min_k:
            raise ValueError(
                f"{owner}: acc_width={acc_width} holds at most {self.max_k} products without "
                f"overflow, fewer than min_k={min_k}"
            )

    @property
    def latency(self):
        """Cycles from an input edge to its effect on ``acc``."""
        return 1 + self.pipeline

    def operand_ports(self):
        """Signature members of the operands, in port order."""
        raise NotImplementedError

    def product(self):
        """Signed product of the operand ports (combinational)."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        prod = delay(m, self.product(), self.pipeline, name="prod")
        valid = delay(m, self.valid, self.pipeline, name="valid")
        clear = delay(m, self.clear, self.pipeline, name="clear")
        m.d.sync += self.acc.eq(integer_accumulate(self.acc, prod, valid, clear))
        return m
