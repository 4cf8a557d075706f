"""Integer requantization: from a layer's integer accumulator to the next layer's UINT4 codes.

This is the one host function that turns float scales into the fixed-point
multiplier the hardware applies (SPEC section 2), and the integer operation the
hardware performs with it. The golden model trains through exactly these
functions, so the activations it learns with are the ones the RTL produces.

Fixed-point multiplier
----------------------
A real multiplier ``r > 0`` is written ``r = M0 * 2**-shift`` with ``M0`` a
16-bit unsigned integer normalized to ``2**15 <= M0 < 2**16`` and
``1 <= shift <= 62``:
``frexp(r) = (f, e)`` with ``f`` in [0.5, 1), ``M0 = round_half_even(f * 2**16)``
(computed exactly in float64), ``shift = 16 - e``; when rounding carries
``M0`` to ``2**16`` it becomes ``2**15`` and ``shift`` drops by one.
The relative error of ``M0 * 2**-shift`` against ``r`` is at most ``2**-16``.

Requantization
--------------
``q = (acc * M0 + 2**(shift-1)) >> shift`` (arithmetic shift: round half up,
towards +inf), then the ReLU/PACT clamp ``code = clamp(q, 0, QMAX)`` with
``QMAX = 15`` (UINT4). ``acc`` must fit in 40 bits so that ``acc * M0`` fits
in a signed 64-bit word (checked).

The PACT straight-through mask and the alpha gradient use the same integer
comparisons: the activation is "inside" when ``acc > 0`` and
``acc * M0 < QMAX << shift`` (the unrounded real value lies strictly between
0 and alpha) and "saturated" (counts towards d/dalpha) when
``acc * M0 >= QMAX << shift``.
"""

import math

import torch

__all__ = ["QMAX", "ACC_BITS_MAX", "requant_params", "requantize", "pact_masks", "requantize_pact"]

#: Largest UINT4 code.
QMAX = 15

#: Largest accumulator width (bits, signed) accepted by :func:`requantize`.
ACC_BITS_MAX = 40

_M0_BITS = 16


def requant_params(real_multiplier):
    """Fixed-point form ``(M0, shift)`` of a positive real multiplier.

    Parameters
    ----------
    real_multiplier : float
        The ratio of the accumulator's real unit to the next layer's
        activation step, ``scale_x * scale_w / step_out``. Must be finite and
        in ``[2**-46, 2**15)``.

    Returns
    -------
    tuple of int
        ``(M0, shift)`` with ``2**15 <= M0 < 2**16`` and ``1 <= shift <= 62``.
    """
    r = float(real_multiplier)
    if not math.isfinite(r) or r <= 0.0:
        raise ValueError(f"requantization multiplier must be finite and > 0, got {real_multiplier!r}")
    f, e = math.frexp(r)
    m0 = round(f * (1 << _M0_BITS))  # f * 2**16 is exact in float64; round() is half-even
    shift = _M0_BITS - e
    if m0 == 1 << _M0_BITS:
        m0 >>= 1
        shift -= 1
    if not 1 <= shift <= 62:
        raise ValueError(f"requantization multiplier {r!r} is out of range: shift {shift} not in 1..62")
    return m0, shift


def _check_acc(acc):
    if not isinstance(acc, torch.Tensor) or acc.dtype not in (torch.int32, torch.int64):
        raise TypeError("accumulator must be an int32 or int64 torch tensor")
    acc = acc.to(torch.int64)
    if acc.numel():
        limit = 1 << (ACC_BITS_MAX - 1)
        lo, hi = int(acc.min()), int(acc.max())
        if lo < -limit or hi >= limit:
            raise ValueError(f"accumulator value out of the {ACC_BITS_MAX}-bit range: [{lo}, {hi}]")
    return acc


def requantize(acc, m0, shift, qmax=QMAX):
    """Integer requantization of an accumulator tensor to UINT4 codes.

    Parameters
    ----------
    acc : torch.Tensor
        Integer accumulator (int32 or int64), bias already added.
    m0, shift : int
        Fixed-point multiplier from :func:`requant_params`.
    qmax : int
        Upper clamp (15 for UINT4).

    Returns
    -------
    torch.Tensor
        uint8 codes in ``0..qmax``.
    """
    acc = _check_acc(acc)
    q = (acc * int(m0) + (1 << (int(shift) - 1))) >> int(shift)
    return q.clamp_(0, qmax).to(torch.uint8)


def pact_masks(acc, m0, shift, qmax=QMAX):
    """Integer PACT masks of an accumulator: ``(inside, saturated)`` bool tensors.

    ``inside``: straight-through region (0 < x < alpha); ``saturated``:
    x >= alpha, where the upstream gradient counts towards d/dalpha.
    """
    acc = _check_acc(acc)
    prod = acc * int(m0)
    top = qmax << int(shift)
    saturated = prod >= top
    inside = (acc > 0) & ~saturated
    return inside, saturated


def requantize_pact(acc, m0, shift, qmax=QMAX):
    """:func:`requantize` and :func:`pact_masks` in one pass: ``(codes, inside, saturated)``."""
    acc = _check_acc(acc)
    prod = acc * int(m0)
    saturated = prod >= (qmax << int(shift))
    inside = (acc > 0) & ~saturated
    codes = ((prod + (1 << (int(shift) - 1))) >> int(shift)).clamp_(0, qmax).to(torch.uint8)
    return codes, inside, saturated
