"""The number-format abstraction shared by the golden model and the hardware.

A :class:`NumberFormat` knows its codes, how codes decode to values and how a
product with an integer operand is formed. Product rules are written once,
against a small backend interface (:class:`Ops`), so that the golden model
(torch tensors, :class:`golden.formats.ops.TorchOps`) and the hardware
(Amaranth values, ``hw.arith.AmaranthOps``) evaluate literally the same rule.
This plays the part of Gemmini's ``Arithmetic`` typeclass: a new format is one
class (plus its tests), and both sides pick it up.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol

__all__ = ["Ops", "NumberFormat", "IntegerFormat", "ScaleFormat", "ProductRange", "max_safe_k"]


class Ops(Protocol):
    """Primitive operations a backend supplies to evaluate product rules.

    Values are backend objects (torch integer tensors, Amaranth values).
    ``signed`` arguments may be Python booleans or backend values (a run-time
    mode bit).
    """

    def field(self, value: Any, lo: int, width: int) -> Any:
        """Unsigned bit field ``value[lo : lo + width]``."""

    def to_int(self, code: Any, width: int, signed: Any) -> Any:
        """Integer value of a ``width``-bit code, two's complement where ``signed``."""

    def eq(self, value: Any, constant: int) -> Any:
        """1 where ``value == constant``."""

    def where(self, cond: Any, if_true: Any, if_false: Any) -> Any:
        """Select per element."""

    def mul(self, a: Any, b: Any) -> Any:
        """Exact product of two integers."""

    def neg(self, value: Any) -> Any:
        """Exact negation."""

    def shl(self, value: Any, amount: Any, max_amount: int) -> Any:
        """Exact ``value << amount`` with ``0 <= amount <= max_amount``."""

    def const(self, value: int) -> Any:
        """An integer constant."""


class ProductRange:
    """Inclusive range of the integer products of a MAC over all its operand modes.

    Parameters
    ----------
    lo, hi : int
        Smallest and largest product.
    """

    def __init__(self, lo: int, hi: int):
        if lo > hi:
            raise ValueError(f"empty product range [{lo}, {hi}]")
        self.lo, self.hi = lo, hi

    def __repr__(self):
        return f"ProductRange({self.lo}, {self.hi})"

    def __eq__(self, other):
        return isinstance(other, ProductRange) and (self.lo, self.hi) == (other.lo, other.hi)

    def union(self, other: ProductRange) -> ProductRange:
        return ProductRange(min(self.lo, other.lo), max(self.hi, other.hi))


def max_safe_k(products: ProductRange, acc_width: int) -> int:
    """Largest K such that any K products in ``products`` sum into a signed
    ``acc_width``-bit accumulator without overflow.

    Raises
    ------
    ValueError
        If ``acc_width`` is not a positive integer.
    """
    if not isinstance(acc_width, int) or isinstance(acc_width, bool) or acc_width <= 0:
        raise ValueError(f"accumulator width must be a positive integer, not {acc_width!r}")
    acc_max = (1 << (acc_width - 1)) - 1
    acc_min = -(1 << (acc_width - 1))
    bounds = []
    if products.hi > 0:
        bounds.append(acc_max // products.hi)
    if products.lo < 0:
        bounds.append(acc_min // products.lo)
    if not bounds:
        raise ValueError("all products are zero: every K is safe")
    return min(bounds)


class NumberFormat(abc.ABC):
    """A number format of ``bits`` bits.

    Attributes
    ----------
    name : str
        Short lower-case name (``"int4"``, ``"fp4r4"``, ...).
    bits : int
        Width of one code.
    """

    name: str
    bits: int

    @property
    def num_codes(self) -> int:
        return 1 << self.bits

    def codes(self) -> range:
        """Every code of the format, as unsigned integers ``0 .. 2**bits - 1``."""
        return range(self.num_codes)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


class IntegerFormat(NumberFormat):
    """Integer codes whose value is the code itself (two's complement where signed).

    Parameters
    ----------
    name : str
    bits : int
    signed : bool
    """

    def __init__(self, *, name: str, bits: int, signed: bool):
        if not isinstance(bits, int) or bits <= 0:
            raise ValueError(f"bits must be a positive integer, not {bits!r}")
        self.name, self.bits, self.signed = name, bits, bool(signed)

    @property
    def min_value(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_value(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def value(self, code: Any, ops: Ops, signed: Any = None) -> Any:
        """Integer value of ``code``; ``signed`` overrides the format's own
        signedness with a run-time mode bit (the MACs' ``a_signed``)."""
        return ops.to_int(code, self.bits, self.signed if signed is None else signed)

    def scale(self, code: Any, x: Any, ops: Ops, signed: Any = None) -> Any:
        """Product of the integer ``x`` with the value of ``code``."""
        return ops.mul(x, self.value(code, ops, signed))

    def value_range(self) -> ProductRange:
        return ProductRange(self.min_value, self.max_value)

    def scale_range(self, x: ProductRange) -> ProductRange:
        corners = [a * b for a in (x.lo, x.hi) for b in (self.min_value, self.max_value)]
        return ProductRange(min(corners), max(corners))


class ScaleFormat(NumberFormat):
    """A format whose codes multiply an integer by a signed power of two (a shift).

    Subclasses define :meth:`sign`, :meth:`exponent_field` and the shift
    ``shift_per_step * (e - 1)`` for exponent field ``e >= 1``; ``e == 0`` is
    zero. Product of integer ``x`` with code ``c``:
    ``(-1)**s * x << shift_per_step * (e - 1)``.
    """

    sign_bit: int
    exponent_bits: int
    shift_per_step: int

    @property
    def max_exponent(self) -> int:
        return (1 << self.exponent_bits) - 1

    @property
    def max_shift(self) -> int:
        return self.shift_per_step * (self.max_exponent - 1)

    def scale(self, code: Any, x: Any, ops: Ops, signed: Any = None) -> Any:
        e = ops.field(code, 0, self.exponent_bits)
        s = ops.field(code, self.sign_bit, 1)
        # e == 0 encodes zero; for e >= 1 the shift is step * (e - 1).
        amount = ops.mul(ops.where(ops.eq(e, 0), ops.const(0), e - 1), ops.const(self.shift_per_step))
        shifted = ops.shl(x, amount, self.max_shift)
        signed_product = ops.where(ops.eq(s, 1), ops.neg(shifted), shifted)
        return ops.where(ops.eq(e, 0), ops.const(0), signed_product)

    def scale_range(self, x: ProductRange) -> ProductRange:
        top = 1 << self.max_shift
        corners = [v * m for v in (x.lo, x.hi) for m in (top, -top)]
        return ProductRange(min([*corners, 0]), max([*corners, 0]))
