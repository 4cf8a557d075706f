"""The ``valid``/``clear`` accumulator update shared by every PE (SPEC section 3).

Per rising edge, with ``prod`` the unit's product::

    valid & clear  : acc <= prod
    valid & !clear : acc <= acc + prod
    !valid & clear : acc <= 0
    otherwise      : acc holds

:func:`integer_accumulate` and :func:`fp32_accumulate` return the next
accumulator value as combinational logic; the caller registers it, so that a
standalone PE, a pipelined PE and an array cell share the same rule.
"""

from amaranth.hdl import Const, Mux, Value

from .fp import FP32_NEGATIVE_ZERO, fp32_add

__all__ = ["integer_accumulate", "fp32_accumulate"]


def integer_accumulate(acc, prod, valid, clear):
    """Next value of a wrapping two's-complement accumulator.

    Parameters
    ----------
    acc : Value
        Current accumulator (its width sets the wrap-around).
    prod : Value
        Signed product, sign-extended or truncated to ``len(acc)`` bits.
    valid, clear : Value
        1-bit controls.

    Returns
    -------
    Value
        ``(clear ? 0 : acc) + (valid ? prod : 0)`` truncated to ``len(acc)`` bits,
        which is the four-case rule above in one adder.
    """
    acc = Value.cast(acc)
    width = len(acc)
    base = Mux(clear, 0, acc)
    addend = Mux(valid, prod, 0)
    return (base + addend)[:width]


def fp32_accumulate(m, acc, prod, valid, clear, *, prefix="add"):
    """Next value of a binary32 accumulator (one round-to-nearest-even add).

    Parameters
    ----------
    m : Module
        Module the adder is added to.
    acc, prod : Value
        32-bit binary32 patterns.
    valid, clear : Value
        1-bit controls.
    prefix : str
        Prefix of the adder's intermediate signal names.

    Returns
    -------
    Value
        32-bit binary32 pattern. After ``clear`` the adder adds ``-0``, the
        identity of binary32 addition, so the product passes through exactly
        (``-0`` survives, NaN stays canonical) without a second datapath.
    """
    base = Mux(clear, Const(FP32_NEGATIVE_ZERO, 32), acc)
    total = fp32_add(m, base, prod, prefix=prefix)
    return Mux(valid, total, Mux(clear, 0, acc))
