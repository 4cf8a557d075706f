"""Logarithmic FP4 gradients: radix-4 FP4 with GradScale and two-phase rounding (SPEC section 1).

A code is ``s eee``: bit 3 the sign, bits 2..0 the exponent field ``e``;
``e = 0`` is zero and ``e = 1..7`` is ``(-1)^s * S * 2^-p * radix^(e-7)``,
with ``S`` the per-tensor GradScale and ``p`` the TPR phase.

GradScale: for a tensor whose values are multiples of a unit ``u``,
``amax = max|v / u|`` and ``k`` is the smallest integer with ``2^k >= amax``;
``S = u * 2^k``. The magnitude ``m = |v / u| / 2^(k - p)`` is rounded onto
the levels ``radix^(e-7)``. Everything is a comparison of ``m`` against
powers of two, so it is exact in float64 (and in hardware a leading-one
detection plus a rounding compare).

Rounding modes (``rounding=``):

``"nearest"`` (default)
    Round to the nearest level in the linear domain; ``m < 0.5 * radix^-6``
    is zero; the boundary between levels ``e`` and ``e + 1`` is their
    arithmetic mean (``2.5 * 4^(e-7)`` for radix 4).
``"log"``
    Boundaries at the geometric mean of neighbouring levels
    (``2 * 4^(e-7)`` for radix 4); the zero threshold is as for ``"nearest"``.
``"stochastic"``
    Between the levels ``lo <= m < hi`` (``lo = 0`` below the smallest level)
    round up when ``r < (m - lo) / (hi - lo)``, with ``r = u / 2^16`` and
    ``u = uniform16(seed, i)`` for element ``i`` of the flattened tensor: a
    counter-based generator (a hash of (seed, index), :func:`uniform16`), so
    every element reads its own independent 16-bit number.

Ties (``ties=``): ``"away"`` (default, ``m >= boundary`` rounds up, away from
zero) or ``"zero"`` (``m > boundary`` rounds up). ``m >= 1`` saturates at the
top level.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from fourbit.util.lazy import lazy_import

from ._checks import choice, code_tensor, positive_scalar, tensor_arg
from .base import ScaleFormat

# Imported at its first use: importing hw.kinds need not take seconds (fourbit.util.lazy).
torch = lazy_import("torch")

__all__ = [
    "LogFormat",
    "FP4_RADIX4",
    "FP4_RADIX2",
    "ROUNDING_MODES",
    "TIE_RULES",
    "fp4_quantize",
    "fp4_decode",
    "grad_scale_exponent",
    "lfsr16_states",
    "lowbias32",
    "uniform16",
]

ROUNDING_MODES = ("nearest", "log", "stochastic")
TIE_RULES = ("away", "zero")


def grad_scale_exponent(amax: float) -> int:
    """Smallest integer ``k`` with ``2^k >= amax`` (``amax > 0``), exactly, via frexp."""
    mantissa, exponent = math.frexp(amax)
    return exponent - 1 if mantissa == 0.5 else exponent


@functools.lru_cache(maxsize=1)
def _lfsr16_table() -> np.ndarray:
    states = np.empty(65535, dtype=np.int64)
    state = 1
    for i in range(65535):
        states[i] = state
        bit = ((state >> 0) ^ (state >> 2) ^ (state >> 3) ^ (state >> 5)) & 1
        state = (state >> 1) | (bit << 15)
    return states


def lfsr16_states(n: int, seed: int = 1) -> np.ndarray:
    """``n`` consecutive states of the 16-bit LFSR, starting at state ``seed`` (1..65535)."""
    if not 1 <= seed <= 0xFFFF:
        raise ValueError(f"LFSR seed must be in 1..65535, got {seed}")
    table = _lfsr16_table()
    start = int(np.flatnonzero(table == seed)[0])
    return table[(start + np.arange(n)) % 65535]


_MASK32 = 0xFFFFFFFF


def lowbias32(x):
    """Chris Wellons' ``lowbias32`` integer hash, a bijection of 32-bit words, elementwise.

    ``x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16``
    (products modulo 2^32). ``x``: a Python int or an int64 tensor of values in 0..2^32-1.
    """
    if isinstance(x, torch.Tensor):
        x = x ^ (x >> 16)
        x = (x * 0x7FEB352D) & _MASK32  # int64 products wrap modulo 2^64: the low 32 bits are exact
        x = x ^ (x >> 15)
        x = (x * 0x846CA68B) & _MASK32
        return x ^ (x >> 16)
    x &= _MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def uniform16(seed: int, n: int, device=None) -> torch.Tensor:
    """The stochastic-rounding numbers of ``n`` elements: ``u_i = lowbias32(lowbias32(i) ^ key) >> 16``.

    ``key = lowbias32(seed mod 2^32)``; ``i = 0 .. n-1`` is the element's index
    in the flattened tensor. A counter-based generator: each element's 16-bit
    number depends only on (seed, i), so hardware computes it in any order
    with two 32-bit hashes (four multiplies) per element, and, ``lowbias32``
    being a bijection, no input repeats for ``n <= 2^32``.

    Returns
    -------
    torch.Tensor
        int64 values in 0..65535.
    """
    if not 0 <= n <= 1 << 32:
        raise ValueError(f"uniform16: n must be in 0..2^32, got {n}")
    key = lowbias32(int(seed))
    index = torch.arange(n, dtype=torch.int64, device=device)
    return lowbias32(lowbias32(index) ^ key) >> 16


class LogFormat(ScaleFormat):
    """A sign + exponent logarithmic format with per-tensor power-of-two scale.

    Parameters
    ----------
    name : str
        Short name.
    radix : int
        Ratio of neighbouring levels, a power of two (4 for the paper's FP4).
    exponent_bits : int
        Width of the exponent field; the sign bit sits above it.
    phases : int
        Number of TPR phases (grids offset by a factor 2).

    Attributes
    ----------
    bits : int
        ``exponent_bits + 1``.
    """

    def __init__(self, *, name: str, radix: int, exponent_bits: int, phases: int):
        if radix < 2 or radix & (radix - 1):
            raise ValueError(f"radix must be a power of two >= 2, not {radix!r}")
        if exponent_bits < 1:
            raise ValueError(f"exponent_bits must be >= 1, not {exponent_bits!r}")
        self.name, self.radix, self.exponent_bits, self.phases = name, radix, exponent_bits, phases
        self.bits = exponent_bits + 1
        self.sign_bit = exponent_bits
        self.shift_per_step = radix.bit_length() - 1

    def level(self, e: int) -> float:
        """Magnitude of exponent field ``e >= 1`` relative to ``S * 2^-p``."""
        return float(self.radix) ** (e - self.max_exponent)

    def thresholds(self, rounding: str) -> np.ndarray:
        """Values of ``m`` at which the exponent steps up: ``e = #(thresholds <= m)``."""
        levels = [self.level(e) for e in range(1, self.max_exponent + 1)]
        if rounding == "log":
            between = [math.sqrt(lo * hi) for lo, hi in itertools.pairwise(levels)]
        else:
            between = [(lo + hi) / 2 for lo, hi in itertools.pairwise(levels)]
        return np.array([levels[0] / 2, *between], dtype=np.float64)

    def quantize(
        self,
        v: torch.Tensor,
        *,
        phase: int = 0,
        unit: float = 1.0,
        rounding: str = "nearest",
        ties: str = "away",
        seed: int = 1,
    ):
        """Codes and scale of ``v``; see :func:`fp4_quantize`."""
        func = "fp4_quantize"
        tensor_arg(func, "v", v, allow_int=True)
        unit = positive_scalar(func, "unit", unit)
        if phase not in range(self.phases):
            raise ValueError(f"{func}: argument 'phase' must be one of {list(range(self.phases))}, got {phase!r}")
        choice(func, "rounding", rounding, ROUNDING_MODES)
        choice(func, "ties", ties, TIE_RULES)

        # Integer tensors count units; float tensors are real values.
        counts = v.to(torch.float64) if not v.is_floating_point() else v.to(torch.float64) / unit
        magnitude = counts.abs()
        amax = float(magnitude.max()) if magnitude.numel() else 0.0
        if amax == 0.0:
            return torch.zeros(v.shape, dtype=torch.uint8, device=v.device), unit
        k = grad_scale_exponent(amax)
        # Scale by 2^(phase - k) in two exact power-of-two steps (one could overflow for subnormal amax).
        half = (phase - k) // 2
        m = magnitude * math.ldexp(1.0, half) * math.ldexp(1.0, phase - k - half)

        if rounding == "stochastic":
            e = self._stochastic_exponent(m, seed)
        else:
            thresholds = torch.as_tensor(self.thresholds(rounding), device=v.device)
            e = torch.bucketize(m, thresholds, right=(ties == "away"))
        sign = (counts < 0) & (e > 0)
        codes = (e | (sign.to(e.dtype) << self.sign_bit)).to(torch.uint8)
        return codes, math.ldexp(unit, k)

    def _stochastic_exponent(self, m: torch.Tensor, seed: int) -> torch.Tensor:
        levels = torch.tensor(
            [0.0] + [self.level(e) for e in range(1, self.max_exponent + 1)], dtype=torch.float64, device=m.device
        )
        # Index of the level at or below m (levels[0] = 0), saturating at the top.
        m = m.contiguous()
        lower = (torch.bucketize(m, levels, right=True) - 1).clamp_(0, self.max_exponent)
        upper = (lower + 1).clamp_(max=self.max_exponent)
        lo, hi = levels[lower], levels[upper]
        frac = torch.where(upper > lower, (m - lo) / (hi - lo), torch.zeros_like(m))
        r = uniform16(seed, m.numel(), device=m.device).reshape(m.shape)
        return torch.where(r.to(torch.float64) < frac * 65536, upper, lower)

    def decode(self, codes: torch.Tensor, scale, *, phase: int = 0) -> torch.Tensor:
        """float64 values of ``codes``; see :func:`fp4_decode`."""
        func = "fp4_decode"
        code_tensor(func, "codes", codes)
        scale = positive_scalar(func, "scale", scale)
        if phase not in range(self.phases):
            raise ValueError(f"{func}: argument 'phase' must be one of {list(range(self.phases))}, got {phase!r}")
        raw = codes.to(torch.int64)
        if bool(((raw < 0) | (raw >= self.num_codes)).any()):
            raise ValueError(f"{func}: codes must be in 0..{self.num_codes - 1}")
        table = torch.tensor(
            [self.code_value(c, scale, phase) for c in self.codes()], dtype=torch.float64, device=codes.device
        )
        return table[raw]

    def code_value(self, code: int, scale: float, phase: int = 0) -> float:
        """Real value of one code (exact: a power of two times ``scale``)."""
        e = code & self.max_exponent
        if e == 0:
            return 0.0
        sign = -1.0 if code >> self.sign_bit & 1 else 1.0
        return sign * math.ldexp(scale, (e - self.max_exponent) * self.shift_per_step - phase)


#: The paper's radix-4 FP4 (1 sign bit, 3 exponent bits, two TPR phases).
FP4_RADIX4 = LogFormat(name="fp4r4", radix=4, exponent_bits=3, phases=2)
#: Radix-2 FP4 (1 sign bit, 3 exponent bits, one phase), the LUQ-style gradient format.
FP4_RADIX2 = LogFormat(name="fp4r2", radix=2, exponent_bits=3, phases=1)


def fp4_quantize(
    v: torch.Tensor, phase: int = 0, unit: float = 1.0, *, rounding: str = "nearest", ties: str = "away", seed: int = 1
):
    """Quantize a gradient tensor to radix-4 FP4 codes with GradScale and TPR phase ``phase``.

    Parameters
    ----------
    v : torch.Tensor
        Gradient values. A floating-point tensor holds real values (``v / unit``
        is quantized); an integer tensor holds counts of ``unit``, e.g. an
        integer accumulator whose real value is ``v * unit``.
    phase : {0, 1}
        TPR phase: phase 1's grid is phase 0's halved.
    unit : float
        The real-valued unit of ``v``.
    rounding : {"nearest", "log", "stochastic"}
    ties : {"away", "zero"}
    seed : int
        Seed of the counter-based generator :func:`uniform16` for ``rounding="stochastic"``.

    Returns
    -------
    codes : torch.Tensor
        ``uint8`` codes 0..15 (``0x0`` for zero; the sign bit only on non-zeros).
    scale : float
        ``S = unit * 2^k``. An all-zero or empty tensor gives ``S = unit``.
    """
    return FP4_RADIX4.quantize(v, phase=phase, unit=unit, rounding=rounding, ties=ties, seed=seed)


def fp4_decode(codes: torch.Tensor, scale, phase: int = 0) -> torch.Tensor:
    """float64 values ``(-1)^s * scale * 2^-phase * 4^(e-7)`` of FP4 ``codes`` (0 where e = 0)."""
    return FP4_RADIX4.decode(codes, scale, phase=phase)
