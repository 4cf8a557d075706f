"""Fused, bit-exact fast paths of the element-wise steps of a quantized layer.

Each function here returns exactly what its definition returns (the function
named in its docstring), bit for bit; it only takes fewer passes over the
tensor, avoids int64 and branchy kernels, and proves in O(1) (from an amax
or a bound already at hand) that its float arithmetic is exact, falling
back to the definition when it cannot. ``tests/golden/test_fused.py``
checks every function against its definition, edge cases included.

- :func:`masked`: ``torch.where(mask, g, 0)`` as a bitwise AND (``where`` is a
  branchy kernel on CPU, about 10x slower).
- :func:`gather`: a table lookup ``table[codes]`` with ``index_select``.
- :func:`requantize_pact`: :func:`golden.requant.requantize_pact` on a float
  accumulator, in float64 instead of int64.
- :func:`pact_quantize`: :func:`golden.formats.quantize_pact` plus the PACT
  masks, without repeated conversions.
- :func:`fp4_encode`: both TPR phases of :meth:`golden.formats.LogFormat.quantize`
  by one table lookup on the float32 bit pattern, the table built by the
  format's own quantizer.
"""

import functools
import math

import torch

from .formats import grad_scale_exponent, quantize_pact
from .requant import ACC_BITS_MAX, QMAX
from .requant import requantize_pact as _requantize_pact_int

__all__ = ["masked", "gather", "KeyedCodes", "requantize_pact", "pact_quantize", "fp4_encode", "FLOAT64_EXACT"]

#: Integers of magnitude below these are exact in float32 / float64.
FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53


_INT_VIEW = {
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float32: torch.int32,
    torch.float64: torch.int64,
}


def masked(g, mask):
    """``torch.where(mask, g, 0)`` (a ``+0.0`` where ``mask`` is 0), bit for bit.

    ``mask`` is a bool or 0/1 float tensor of ``g``'s shape. The bit pattern
    of ``g`` is ANDed with all ones where the mask is set and with zero
    elsewhere: exactly ``where`` (``-0.0`` and NaN kept inside the mask,
    ``+0.0`` outside), but vectorized (``where`` and a multiply by bool are
    branchy kernels on CPU, about 10x slower).
    """
    view = _INT_VIEW.get(g.dtype)
    if view is None or g.shape != mask.shape or not g.is_contiguous():
        return torch.where(mask.bool(), g, torch.zeros((), dtype=g.dtype, device=g.device))
    bits = mask.to(view).neg_()  # 0 -> 0, 1 -> all ones
    return (g.view(view) & bits).view(g.dtype)


def _compare(op, t, value):
    """``op(t, value)`` as a 0/1 float32 tensor (written directly: faster than a bool result)."""
    return op(t, value, out=torch.empty(t.shape, dtype=torch.float32, device=t.device))


def gather(table, codes):
    """``table[codes]`` for a 1-D table and an integer code tensor (``index_select``, no int64 copy).

    ``codes`` may be a :class:`KeyedCodes`: then ``table[code_table][keys]``, one lookup from the
    keys (the composed table has 2048 entries), without materializing the codes.
    """
    if isinstance(codes, KeyedCodes):
        composed = table.index_select(0, codes.table.to(torch.int32))
        return composed.index_select(0, codes.keys.reshape(-1)).reshape(codes.keys.shape)
    return table.index_select(0, codes.reshape(-1).to(torch.int32)).reshape(codes.shape)


class KeyedCodes:
    """FP4 codes held as table keys: ``codes = table[keys]``, materialized only on demand.

    :func:`fp4_encode` computes the codes as a lookup of a 2048-entry table with keys
    from the float32 bit patterns. A consumer that only needs a function of the codes (the
    multipliers of a GEMM) composes that function with the table and looks the keys up once
    (:func:`gather`), instead of looking up the codes and then their multipliers.

    Parameters
    ----------
    keys : torch.Tensor
        int32 keys, shape of the codes.
    table : torch.Tensor
        uint8 codes of every key.
    """

    __slots__ = ("_codes", "keys", "table")

    def __init__(self, keys, table):
        self.keys, self.table, self._codes = keys, table, None

    @property
    def shape(self):
        return self.keys.shape

    @property
    def device(self):
        return self.keys.device

    def dim(self):
        return self.keys.dim()

    def numel(self):
        return self.keys.numel()

    def codes(self):
        """The uint8 codes (looked up once, then kept)."""
        if self._codes is None:
            self._codes = self.table.index_select(0, self.keys.reshape(-1)).reshape(self.keys.shape)
        return self._codes

    def _apply(self, fn):
        out = KeyedCodes(fn(self.keys), self.table)
        if self._codes is not None:
            out._codes = fn(self._codes)
        return out

    def reshape(self, *shape):
        return self._apply(lambda t: t.reshape(*shape))

    def permute(self, *dims):
        return self._apply(lambda t: t.permute(*dims))

    def contiguous(self):
        return self._apply(lambda t: t.contiguous())

    def __and__(self, other):
        return self.codes() & other


def requantize_pact(acc, m0, shift, qmax=QMAX):
    """:func:`golden.requant.requantize_pact` of a float tensor of integers, with float64 codes.

    ``q = (acc * M0 + 2^(shift-1)) >> shift`` is computed as
    ``floor((acc * M0 + 2^(shift-1)) * 2^-shift)`` in float64, exact when
    ``max|acc| * M0 + 2^(shift-1) < 2^53`` (checked from ``max|acc|``): every
    intermediate is then an integer below 2^53 or a power-of-two scaling of
    one. The masks compare ``acc`` with the integer ``ceil(qmax * 2^shift / M0)``,
    which is ``acc * M0 >= qmax << shift`` for integer ``acc``.

    Parameters
    ----------
    acc : torch.Tensor
        float32 or float64 tensor of exact integers (the accumulator, bias included).
    m0, shift, qmax : int
        As :func:`golden.requant.requantize_pact`.

    Returns
    -------
    codes : torch.Tensor
        float64 codes in ``0..qmax``.
    inside, saturated : torch.Tensor
        0/1 float32 masks.
    """
    m0, shift = int(m0), int(shift)
    if acc.numel():
        lo, hi = (float(v) for v in torch.aminmax(acc))
    else:
        lo = hi = 0.0
    amax = max(-lo, hi)
    limit = 1 << (ACC_BITS_MAX - 1)
    if not (math.isfinite(amax) and lo >= -limit and hi < limit and amax * m0 + 2.0 ** (shift - 1) < FLOAT64_EXACT):
        codes, inside, saturated = _requantize_pact_int(acc.to(torch.int64), m0, shift, qmax)
        return codes.to(torch.float64), inside.to(torch.float32), saturated.to(torch.float32)
    # acc * (M0 * 2^-shift) + 1/2 is (acc * M0 + 2^(shift-1)) * 2^-shift, both steps exact.
    codes = acc.to(torch.float64, copy=True)
    codes.mul_(math.ldexp(m0, -shift)).add_(0.5).floor_().clamp_(0, qmax)
    top = -((-qmax << shift) // m0)  # ceil(qmax * 2^shift / M0), exact integer
    # Compare in float32 where that is exact (integers below 2^24; a float32 compare is faster).
    small = acc if acc.dtype == torch.float32 else acc.to(torch.float32) if amax < FLOAT32_EXACT else acc
    if top > amax:
        saturated = torch.zeros(acc.shape, dtype=torch.float32, device=acc.device)
    else:  # top <= amax: exact in acc's dtype, or below 2^24
        saturated = _compare(torch.ge, small if top < FLOAT32_EXACT else acc.to(torch.float64), top)
    inside = _compare(torch.gt, small, 0).sub_(saturated)  # saturated implies acc > 0
    return codes, inside, saturated


def pact_quantize(y, alpha):
    """:func:`golden.formats.quantize_pact` as float64 codes, and the PACT masks, in place.

    Same float64 operations as the definition (clamp, divide by ``alpha /
    15``, round half even, clamp), on one buffer. ``alpha`` must be a float
    exactly representable in ``y``'s dtype (the masks compare in that dtype).

    Returns
    -------
    codes : torch.Tensor
        float64 codes in 0..15.
    inside, saturated : torch.Tensor
        ``(y > 0) & (y < alpha)`` and ``y >= alpha`` as 0/1 float32.
    """
    a = float(alpha)
    if not (
        y.is_floating_point()
        and a > 0
        and math.isfinite(a)
        and bool(torch.isfinite(y.sum()))
        and float(torch.tensor(a, dtype=y.dtype)) == a
    ):
        codes = quantize_pact(y, alpha).to(torch.float64)
        return codes, ((y > 0) & (y < a)).to(torch.float32), (y >= a).to(torch.float32)
    codes = y.detach().to(torch.float64, copy=True)
    codes.clamp_(0.0, a).div_(a / 15).round_().clamp_(0, 15)
    saturated = _compare(torch.ge, y, a)
    inside = _compare(torch.gt, y, 0).sub_(saturated)  # saturated implies y > 0 (alpha > 0)
    return codes, inside, saturated


# --- FP4 encoding by table lookup ---------------------------------------------------------------

_MANTISSA_KEY_BITS = 2  # 1.0, 1.25, 1.5, 1.75 x 2^E: every radix-4 threshold
_KEY_SHIFT = 23 - _MANTISSA_KEY_BITS
_KEYS = 1 << (32 - _KEY_SHIFT)


@functools.lru_cache(maxsize=1024)
def _fp4_table(fmt, rounding, ties, k, phase, device):
    """Codes of every bucket of float32 bit patterns sharing sign, exponent and top mantissa bits
    for GradScale exponent ``k``, or None when some bucket holds values of different codes."""
    top = math.ldexp(1.0, k)
    keys = torch.arange(_KEYS, dtype=torch.int64)
    lo = (keys << _KEY_SHIFT).to(torch.int32).view(torch.float32)
    hi = ((keys << _KEY_SHIFT) | ((1 << _KEY_SHIFT) - 1)).to(torch.int32).view(torch.float32)
    ends = torch.cat([lo, hi]).to(torch.float64)
    # Every counted value is at most amax <= 2^k: clamp the ends there (NaN/Inf buckets cannot be
    # hit); the appended 2^k gives the format's quantizer the same GradScale exponent k.
    ends = torch.where(torch.isfinite(ends), ends.clamp(-top, top), torch.full_like(ends, top))
    codes, _ = fmt.quantize(
        torch.cat([ends, torch.tensor([top], dtype=torch.float64)]), phase=phase, unit=1.0, rounding=rounding, ties=ties
    )
    lo_codes, hi_codes = codes[:_KEYS], codes[_KEYS : 2 * _KEYS]
    if not torch.equal(lo_codes, hi_codes):
        return None
    return lo_codes.to(device)


def fp4_encode(counts, amax, unit, phases, fmt, *, rounding="nearest", ties="away", keyed=False):
    """Codes of float32 ``counts`` for each phase, equal to ``fmt.quantize(counts * unit, phase=p, unit=unit)``
    (``counts`` exact counts of ``unit``), or None when the lookup cannot be proven exact.

    The quantizer is monotone in ``|counts|`` and its thresholds ``t * 2^(k - p)``
    are powers of two times 1 or 1.25 (radix 4, ``nearest`` / ``log``
    rounding, ties away), so every bucket of float32 values sharing sign,
    exponent and top two mantissa bits has one code: the table holds the
    format's own codes of each bucket's two ends and is used only when they agree
    everywhere (else None, e.g. ties ``zero`` or thresholds among subnormals).

    Parameters
    ----------
    counts : torch.Tensor
        float32 tensor, finite, not all zero.
    amax : float
        ``max|counts|`` (exact).
    unit : float
    phases : iterable of int
    fmt : golden.formats.LogFormat

    keyed : bool
        Return the codes as :class:`KeyedCodes` (one key pass shared by the phases).

    Returns
    -------
    dict or None
        ``{phase: (uint8 codes, GradScale S)}``.
    """
    if counts.dtype != torch.float32 or not amax > 0:
        return None
    k = grad_scale_exponent(float(amax))
    if not -1000 < k < 1000:  # 2^k must be a float64 for the table's clamp
        return None
    tables = {p: _fp4_table(fmt, rounding, ties, k, p, counts.device) for p in phases}
    if any(t is None for t in tables.values()):
        return None
    keys = torch.bitwise_right_shift(counts.view(torch.int32), _KEY_SHIFT).bitwise_and_(_KEYS - 1)
    scale = math.ldexp(float(unit), k)
    if keyed:
        return {p: (KeyedCodes(keys, t), scale) for p, t in tables.items()}
    keys = keys.reshape(-1)
    return {p: (t.index_select(0, keys).reshape(counts.shape), scale) for p, t in tables.items()}
