"""Block-scaled 4-bit formats: MXFP4 and NVFP4 (SPEC section 7).

Element format **E2M1** (4 bits: sign, 2 exponent bits with bias 1, 1 mantissa
bit; magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6). Block scales: **E8M0** (MXFP4,
32-element blocks, value ``2^(X - 127)``, 255 is NaN) and **E4M3** (NVFP4,
16-element blocks, OCP E4M3FN: bias 7, subnormals, max 448, NaN codes
0x7F/0xFF), plus one FP32 tensor scale per NVFP4 tensor.

Every encoder rounds to nearest with ties to the even code and saturates at
the largest finite value; the sign bit is set only on non-zero codes, and no
NaN code is ever produced. All arithmetic is float64 and exact where SPEC 7
says so (the floors via frexp, the divisions by powers of two).

The element formats are :class:`MiniFloatFormat` objects whose integer views
(:meth:`MiniFloatFormat.significand`, :meth:`MiniFloatFormat.int_value`) are
written against :class:`golden.formats.base.Ops`, so the hardware builds its
E2M1 and E4M3 decoders from the same rule.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fourbit.util.lazy import lazy_import

from ._checks import choice, code_tensor, positive_scalar, tensor_arg
from .base import NumberFormat, Ops

# Imported at its first use: importing hw.kinds need not take seconds (fourbit.util.lazy).
torch = lazy_import("torch")

__all__ = [
    "MiniFloatFormat",
    "FewLevelMiniFloatFormat",
    "PowerOfTwoFormat",
    "BlockFormat",
    "E2M1",
    "E4M3",
    "E8M0",
    "MXFP4",
    "NVFP4",
    "BLOCK_FORMATS",
    "FLT_MAX",
    "block_quantize",
    "block_decode",
    "block_quantize_stochastic",
    "block_quantize_tiles",
    "tile_scales_for_axis",
    "pow2_f64",
]

#: Largest finite binary32 value.
FLT_MAX = float(np.finfo(np.float32).max)


def pow2_f64(exponent: torch.Tensor) -> torch.Tensor:
    """Exact float64 ``2**exponent`` of an integer tensor with ``-1022 <= exponent <= 1023`` (built from bits)."""
    exponent = exponent.to(torch.int64)
    if exponent.numel() and bool(((exponent < -1022) | (exponent > 1023)).any()):
        raise ValueError("pow2_f64: exponent outside the normal float64 range -1022..1023")
    return ((exponent + 1023) << 52).view(torch.float64)


class MiniFloatFormat(NumberFormat):
    """A small sign-magnitude binary floating-point format without infinities.

    ``bits = 1 + exponent_bits + mantissa_bits``; the sign is the top bit. A
    magnitude field with exponent ``E`` and mantissa ``M`` is
    ``M * 2^(1 - bias - mantissa_bits)`` when ``E = 0`` (subnormal) and
    ``(2^mantissa_bits + M) * 2^(E - bias - mantissa_bits)`` otherwise.
    Magnitude fields listed in ``nan_magnitudes`` are NaN (with either sign).

    Parameters
    ----------
    name : str
    exponent_bits, mantissa_bits, bias : int
    nan_magnitudes : tuple of int
        Magnitude fields (codes without the sign bit) that encode NaN.
    """

    def __init__(self, *, name: str, exponent_bits: int, mantissa_bits: int, bias: int, nan_magnitudes=()):
        for arg, value in (("exponent_bits", exponent_bits), ("mantissa_bits", mantissa_bits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive integer, not {value!r}")
        self.name, self.exponent_bits, self.mantissa_bits, self.bias = name, exponent_bits, mantissa_bits, bias
        self.bits = 1 + exponent_bits + mantissa_bits
        self.sign_bit = self.bits - 1
        self.magnitude_mask = (1 << self.sign_bit) - 1
        self.nan_magnitudes = tuple(nan_magnitudes)
        if any(not 0 <= m <= self.magnitude_mask for m in self.nan_magnitudes):
            raise ValueError(f"nan_magnitudes must be magnitude fields 0..{self.magnitude_mask}")
        # The NaN fields sit at the top, so the finite magnitudes are the fields 0 .. max_magnitude.
        self.max_magnitude = self.magnitude_mask - len(self.nan_magnitudes)
        if set(self.nan_magnitudes) != set(range(self.max_magnitude + 1, self.magnitude_mask + 1)):
            raise ValueError("nan_magnitudes must be the top magnitude fields")
        self.magnitudes = np.array([self._magnitude(m) for m in range(self.max_magnitude + 1)], dtype=np.float64)
        self.max_value = float(self.magnitudes[-1])

    def _magnitude(self, field: int) -> float:
        e, m = field >> self.mantissa_bits, field & ((1 << self.mantissa_bits) - 1)
        if e == 0:
            return math.ldexp(m, 1 - self.bias - self.mantissa_bits)
        return math.ldexp((1 << self.mantissa_bits) + m, e - self.bias - self.mantissa_bits)

    def is_nan(self, codes: torch.Tensor) -> torch.Tensor:
        """True where an integer code tensor holds a NaN code."""
        magnitude = codes.to(torch.int64) & self.magnitude_mask
        return magnitude > self.max_magnitude

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """float64 values of (non-NaN) codes; a negative-zero code decodes to +0.0."""
        raw = codes.to(torch.int64)
        table = torch.as_tensor(self.magnitudes, device=codes.device)
        magnitude = table[(raw & self.magnitude_mask).clamp(max=self.max_magnitude)]
        return torch.where((raw >> self.sign_bit & 1).bool() & (magnitude > 0), -magnitude, magnitude)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 codes of a float64 tensor: nearest, ties to the even code, saturating; sign only on non-zeros."""
        x = x.to(torch.float64)
        table = torch.as_tensor(self.magnitudes, device=x.device)
        # Midpoints of neighbouring magnitudes are exact in float64; a magnitude on a midpoint is a tie.
        midpoints = (table[:-1] + table[1:]) / 2
        magnitude = x.abs()
        below = torch.bucketize(magnitude, midpoints, right=False)
        above = torch.bucketize(magnitude, midpoints, right=True)
        # Magnitude fields are ordered like their values, so the field index is the code; a tie picks the even one.
        field = torch.where((below != above) & (below % 2 == 1), above, below)
        sign = (x < 0) & (field > 0)
        return (field | (sign.to(torch.int64) << self.sign_bit)).to(torch.uint8)

    # Integer views for the hardware, written against Ops.

    def exponent_field(self, code: Any, ops: Ops) -> Any:
        return ops.field(code, self.mantissa_bits, self.exponent_bits)

    def significand(self, code: Any, ops: Ops) -> Any:
        """Unsigned significand ``M`` (subnormal) or ``2^mantissa_bits + M`` (normal)."""
        e = self.exponent_field(code, ops)
        m = ops.field(code, 0, self.mantissa_bits)
        return ops.where(ops.eq(e, 0), m, m + (1 << self.mantissa_bits))

    def scale_exponent(self, code: Any, ops: Ops) -> Any:
        """Effective biased exponent ``max(E, 1)``: value = significand * 2^(scale_exponent - bias - mantissa_bits)."""
        e = self.exponent_field(code, ops)
        return ops.where(ops.eq(e, 0), ops.const(1), e)

    def int_value(self, code: Any, ops: Ops) -> Any:
        """Signed integer ``value / 2^(1 - bias - mantissa_bits)`` (E2M1: ``N = 2 * value``, in -12..12)."""
        shifted = ops.shl(self.significand(code, ops), self.scale_exponent(code, ops) - 1, self.max_shift)
        return ops.where(ops.eq(ops.field(code, self.sign_bit, 1), 1), ops.neg(shifted), shifted)

    @property
    def max_shift(self) -> int:
        return (self.max_magnitude >> self.mantissa_bits) - 1

    @property
    def max_int_value(self) -> int:
        return ((1 << self.mantissa_bits) + (self.max_magnitude & ((1 << self.mantissa_bits) - 1))) << self.max_shift


class FewLevelMiniFloatFormat(MiniFloatFormat):
    """A :class:`MiniFloatFormat` with few magnitudes (E2M1: 8), encoded by a chain of comparisons.

    The field of ``|x|`` is the number of midpoints it passes: ``|x| > mid_i`` where the tie of
    midpoint ``i`` (between fields ``i`` and ``i + 1``) stays on the even field ``i``, ``|x| >= mid_i``
    where it goes up to the even ``i + 1``. Equal to :meth:`MiniFloatFormat.encode` (tests compare
    every tie, its neighbours and random values), about ten times faster than its bucketize on CPU.
    """

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        magnitude = x.abs()
        field = torch.zeros(x.shape, dtype=torch.uint8, device=x.device)
        for i, mid in enumerate((self.magnitudes[:-1] + self.magnitudes[1:]) / 2):
            field += (magnitude >= mid) if i % 2 else (magnitude > mid)
        sign = (x < 0) & (field > 0)
        return field | (sign.to(torch.uint8) << self.sign_bit)


class PowerOfTwoFormat(NumberFormat):
    """An unsigned exponent-only scale (E8M0): code ``X`` is ``2^(X - bias)``; ``nan_code`` is NaN."""

    def __init__(self, *, name: str, bits: int, bias: int, nan_code: int):
        self.name, self.bits, self.bias, self.nan_code = name, bits, bias, nan_code
        self.max_code = nan_code - 1

    def is_nan(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.to(torch.int64) == self.nan_code

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """float64 ``2^(X - bias)`` (exact) of non-NaN codes."""
        return pow2_f64(codes.to(torch.int64).clamp(max=self.max_code) - self.bias)

    def encode_exponent(self, k: torch.Tensor) -> torch.Tensor:
        """uint8 code of ``2^k``, clamped into the finite codes ``0 .. nan_code - 1``."""
        return (k.to(torch.int64) + self.bias).clamp(0, self.max_code).to(torch.uint8)


E2M1 = FewLevelMiniFloatFormat(name="e2m1", exponent_bits=2, mantissa_bits=1, bias=1)
E4M3 = MiniFloatFormat(name="e4m3", exponent_bits=4, mantissa_bits=3, bias=7, nan_magnitudes=(0x7F,))
E8M0 = PowerOfTwoFormat(name="e8m0", bits=8, bias=127, nan_code=255)


class BlockFormat:
    """A block-scaled format: E2M1 elements in blocks of ``block_size`` with one ``scale_format`` code each.

    Parameters
    ----------
    name : str
        ``"mxfp4"`` or ``"nvfp4"``.
    block_size : int
    scale_format : PowerOfTwoFormat or MiniFloatFormat
    tensor_scaled : bool
        Whether a per-tensor FP32 scale ``g`` is applied (NVFP4).
    """

    element = E2M1

    def __init__(self, *, name: str, block_size: int, scale_format, tensor_scaled: bool):
        self.name, self.block_size, self.scale_format, self.tensor_scaled = (
            name,
            block_size,
            scale_format,
            tensor_scaled,
        )

    def __repr__(self):
        return f"<BlockFormat {self.name}>"

    def num_blocks(self, k: int) -> int:
        return -(-k // self.block_size)

    def scale_values(self, scales: torch.Tensor) -> torch.Tensor:
        """float64 values of (non-NaN) scale codes."""
        return self.scale_format.decode(scales)


MXFP4 = BlockFormat(name="mxfp4", block_size=32, scale_format=E8M0, tensor_scaled=False)
NVFP4 = BlockFormat(name="nvfp4", block_size=16, scale_format=E4M3, tensor_scaled=True)
#: The block formats by SPEC name.
BLOCK_FORMATS = {f.name: f for f in (MXFP4, NVFP4)}


def _as_tensor(func: str, name: str, value) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return value


def block_format(func: str, fmt) -> BlockFormat:
    """The :class:`BlockFormat` named ``fmt`` (or ``fmt`` itself)."""
    if isinstance(fmt, BlockFormat):
        return fmt
    choice(func, "fmt", fmt, tuple(BLOCK_FORMATS))
    return BLOCK_FORMATS[fmt]


def _axis(func: str, axis, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"{func}: argument 'axis' must be an integer, not {type(axis).__name__}")
    if ndim == 0:
        raise ValueError(f"{func}: a 0-d tensor has no axis to block along")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{func}: axis {axis} is out of range for a {ndim}-d tensor")
    return axis % ndim


def _to_blocks(x: torch.Tensor, axis: int, block_size: int) -> torch.Tensor:
    """``x`` with ``axis`` moved last, zero-padded to whole blocks, shaped ``(..., blocks, block_size)``."""
    x = x.movedim(axis, -1)
    k = x.shape[-1]
    pad = -k % block_size
    x = torch.nn.functional.pad(x, (0, pad))
    return x.reshape(*x.shape[:-1], (k + pad) // block_size, block_size)


def _from_blocks(x: torch.Tensor, axis: int, k: int) -> torch.Tensor:
    return x.reshape(*x.shape[:-2], -1)[..., :k].movedim(-1, axis)


def block_quantize(v, fmt, axis: int = -1):
    """Quantize ``v`` to MXFP4 or NVFP4 with blocks along ``axis`` (SPEC 7).

    Parameters
    ----------
    v : torch.Tensor or numpy.ndarray
        Finite real values, at least 1-D.
    fmt : {"mxfp4", "nvfp4"}
    axis : int
        The axis the blocks run along (a GEMM's reduction axis: 1 for A, 0 for B).

    Returns
    -------
    codes : torch.Tensor
        ``uint8`` E2M1 codes, shape of ``v``.
    scales : torch.Tensor
        ``uint8`` scale codes (E8M0 or E4M3), shape of ``v`` with ``axis`` of
        length ``ceil(K / block_size)``.
    tensor_scale : float
        ``g`` for NVFP4 (an FP32 value); 1.0 for MXFP4.
    """
    func = "block_quantize"
    v = tensor_arg(func, "v", _as_tensor(func, "v", v), allow_int=True)
    bf = block_format(func, fmt)
    axis = _axis(func, axis, v.dim())
    k = v.shape[axis]
    blocks = _to_blocks(v.to(torch.float64), axis, bf.block_size)
    amax = blocks.abs().amax(dim=-1) if blocks.numel() else blocks.new_zeros(blocks.shape[:-1])
    if bf is MXFP4:
        codes, scales, tensor_scale = _mxfp4_blocks(blocks, amax)
    else:
        codes, scales, tensor_scale = _nvfp4_blocks(blocks, amax)
    return _from_blocks(codes, axis, k), scales.movedim(-1, axis).contiguous(), tensor_scale


def _mxfp4_blocks(blocks: torch.Tensor, amax: torch.Tensor, encode=None):
    # floor(log2(amax)) = frexp exponent - 1 (frexp's mantissa lies in [0.5, 1)), exact.
    _, exponent = torch.frexp(amax)
    x = E8M0.encode_exponent(exponent.to(torch.int64) - 1 - 2)
    x = torch.where(amax == 0, torch.zeros_like(x), x)
    quotient = blocks / E8M0.decode(x).unsqueeze(-1)
    return (encode or E2M1.encode)(quotient), x, 1.0


def _nvfp4_blocks(blocks: torch.Tensor, amax: torch.Tensor, encode=None):
    # ``encode`` maps the scaled blocks to E2M1 codes (default: round to nearest, SPEC 7).
    tensor_amax = float(amax.max()) if amax.numel() else 0.0
    if tensor_amax == 0.0:
        zeros = torch.zeros(blocks.shape, dtype=torch.uint8, device=blocks.device)
        return zeros, torch.zeros(amax.shape, dtype=torch.uint8, device=blocks.device), 1.0
    g = float(np.float32(min(2688.0 / tensor_amax, FLT_MAX)))
    s = E4M3.encode(amax * g / 6)
    s_value = E4M3.decode(s).unsqueeze(-1)
    codes = (encode or E2M1.encode)(blocks * g / torch.where(s_value > 0, s_value, torch.ones_like(s_value)))
    codes = torch.where(s_value > 0, codes, torch.zeros_like(codes))
    return codes, s, g


def check_block_codes(func: str, name: str, codes: torch.Tensor) -> torch.Tensor:
    """int64 copy of an E2M1 code tensor, checked to hold 0..15."""
    codes = code_tensor(func, name, _as_tensor(func, name, codes)).to(torch.int64)
    if codes.numel() and bool(((codes < 0) | (codes > 15)).any()):
        raise ValueError(f"{func}: argument '{name}' must hold E2M1 codes 0..15")
    return codes


def check_scale_codes(func: str, name: str, scales: torch.Tensor, bf: BlockFormat) -> torch.Tensor:
    """int64 copy of a scale-code tensor, checked to hold 0..255 and no NaN code."""
    scales = code_tensor(func, name, _as_tensor(func, name, scales)).to(torch.int64)
    if scales.numel():
        if bool(((scales < 0) | (scales > 255)).any()):
            raise ValueError(f"{func}: argument '{name}' must hold {bf.scale_format.name} codes 0..255")
        if bool(bf.scale_format.is_nan(scales).any()):
            raise ValueError(f"{func}: argument '{name}' holds a NaN {bf.scale_format.name} code")
    return scales


def block_decode(codes, scales, tensor_scale, fmt, axis: int = -1) -> torch.Tensor:
    """float64 values of block codes: ``E2M1(code) * value(scale) / tensor_scale`` (SPEC 7).

    Parameters
    ----------
    codes : torch.Tensor or numpy.ndarray
        E2M1 codes 0..15 (0x8 decodes to 0).
    scales : torch.Tensor or numpy.ndarray
        Scale codes, shape of ``codes`` with ``axis`` of length ``ceil(K / block_size)``.
    tensor_scale : float
        NVFP4's ``g`` (finite, > 0); ignored for MXFP4 values (which have none) but checked.
    fmt : {"mxfp4", "nvfp4"}
    axis : int
    """
    func = "block_decode"
    bf = block_format(func, fmt)
    codes = check_block_codes(func, "codes", codes)
    scales = check_scale_codes(func, "scales", scales, bf)
    g = positive_scalar(func, "tensor_scale", tensor_scale)
    axis = _axis(func, axis, codes.dim())
    k = codes.shape[axis]
    expected = list(codes.shape)
    expected[axis] = bf.num_blocks(k)
    if list(scales.shape) != expected:
        raise ValueError(f"{func}: 'scales' must have shape {tuple(expected)} for codes {tuple(codes.shape)}")
    values = _to_blocks(E2M1.decode(codes), axis, bf.block_size)
    scaled = values * bf.scale_values(scales).movedim(axis, -1).unsqueeze(-1)
    if bf.tensor_scaled:
        scaled = scaled / g
    return _from_blocks(scaled, axis, k)


# Training-recipe extensions (golden.blocklayers): not part of SPEC 7's interfaces, built from its rules.


def _e2m1_stochastic(quotient: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """uint8 E2M1 codes of float64 quotients rounded stochastically between neighbouring magnitudes.

    Between the magnitudes ``lo <= |q| < hi`` the code rounds up when ``r < (|q| - lo) / (hi - lo) * 2^16``
    (``r`` int64 in 0..65535, one per element); ``|q| >= 6`` saturates at 6. Sign only on non-zero codes.
    """
    table = torch.as_tensor(E2M1.magnitudes, device=quotient.device)
    magnitude = quotient.abs()
    lower = (torch.bucketize(magnitude, table, right=True) - 1).clamp_(0, E2M1.max_magnitude)
    upper = (lower + 1).clamp_(max=E2M1.max_magnitude)
    lo, hi = table[lower], table[upper]
    frac = torch.where(upper > lower, (magnitude - lo) / torch.where(upper > lower, hi - lo, 1.0), 0.0)
    field = torch.where(r.to(torch.float64) < frac * 65536, upper, lower)
    sign = (quotient < 0) & (field > 0)
    return (field | (sign.to(torch.int64) << E2M1.sign_bit)).to(torch.uint8)


def block_quantize_stochastic(v, fmt, axis: int = -1, *, seed: int):
    """:func:`block_quantize` with the E2M1 elements rounded stochastically (a recipe option for gradients).

    The block and tensor scales are exactly :func:`block_quantize`'s (SPEC 7); only the element
    rounding differs: the quotient ``q`` (``v / 2^(X - 127)`` or ``v * g / value(s)``, left to right)
    rounds up from the magnitude below it to the one above with probability ``(|q| - lo) / (hi - lo)``,
    decided by ``r_i < (|q| - lo) / (hi - lo) * 2^16`` with ``r_i = uniform16(seed, i)``
    (:func:`golden.formats.fp4.uniform16`, the counter-based generator of ``luq``), ``i`` the element's
    index in the row-major flattened ``v``. ``|q| > 6`` saturates at 6 (0x7 / 0xF); a block whose NVFP4
    scale is 0 has zero codes.

    Returns
    -------
    codes, scales, tensor_scale
        As :func:`block_quantize`.
    """
    from .fp4 import uniform16

    func = "block_quantize_stochastic"
    v = tensor_arg(func, "v", _as_tensor(func, "v", v), allow_int=True)
    bf = block_format(func, fmt)
    axis = _axis(func, axis, v.dim())
    k = v.shape[axis]
    blocks = _to_blocks(v.to(torch.float64), axis, bf.block_size)
    r = _to_blocks(uniform16(seed, v.numel(), device=v.device).reshape(v.shape), axis, bf.block_size)
    amax = blocks.abs().amax(dim=-1) if blocks.numel() else blocks.new_zeros(blocks.shape[:-1])
    quantize = _mxfp4_blocks if bf is MXFP4 else _nvfp4_blocks
    codes, scales, g = quantize(blocks, amax, encode=lambda scaled: _e2m1_stochastic(scaled, r))
    return _from_blocks(codes, axis, k), scales.movedim(-1, axis).contiguous(), g


def block_quantize_tiles(w, fmt):
    """Quantize a matrix in square ``bs x bs`` tiles (bs = the format's block size), one scale per tile.

    NVIDIA's NVFP4 training recipe quantizes weights in 16 x 16 tiles so that ``W`` and ``W^T``
    share one quantization: a tile's scale is SPEC 7's block scale of the tile's ``bs^2`` values
    (its amax, the same tensor scale ``g``), and every element is encoded as in
    :func:`block_quantize`. Partial tiles are padded with zeros.

    Parameters
    ----------
    w : torch.Tensor
        2-D, finite.
    fmt : {"mxfp4", "nvfp4"}

    Returns
    -------
    codes : torch.Tensor
        uint8, shape of ``w``.
    tile_scales : torch.Tensor
        uint8, shape ``(ceil(R / bs), ceil(C / bs))``.
    tensor_scale : float
    """
    func = "block_quantize_tiles"
    w = tensor_arg(func, "w", _as_tensor(func, "w", w), allow_int=True)
    bf = block_format(func, fmt)
    if w.dim() != 2:
        raise ValueError(f"{func}: argument 'w' must be a 2-D matrix, got shape {tuple(w.shape)}")
    bs, (rows, cols) = bf.block_size, w.shape
    padded = torch.nn.functional.pad(w.to(torch.float64), (0, -cols % bs, 0, -rows % bs))
    tr, tc = padded.shape[0] // bs, padded.shape[1] // bs
    tiles = padded.reshape(tr, bs, tc, bs).transpose(1, 2).reshape(tr, tc, bs * bs)
    amax = tiles.abs().amax(dim=-1) if tiles.numel() else tiles.new_zeros(tiles.shape[:-1])
    codes, scales, g = (_mxfp4_blocks if bf is MXFP4 else _nvfp4_blocks)(tiles, amax)
    codes = codes.reshape(tr, tc, bs, bs).transpose(1, 2).reshape(tr * bs, tc * bs)[:rows, :cols]
    return codes.contiguous(), scales, g


def tile_scales_for_axis(tile_scales: torch.Tensor, shape, axis: int, fmt) -> torch.Tensor:
    """The per-block scales of a tile-quantized matrix of ``shape``, blocked along ``axis`` (0 or 1).

    Block ``b`` of column ``j`` (axis 0) has the scale of tile ``(b, j // bs)``; block ``b`` of row ``i``
    (axis 1) that of tile ``(i // bs, b)``: the shapes :func:`block_quantize` gives along that axis.
    """
    bs = block_format("tile_scales_for_axis", fmt).block_size
    if axis == 0:
        return tile_scales.repeat_interleave(bs, dim=1)[:, : shape[1]]
    return tile_scales.repeat_interleave(bs, dim=0)[: shape[0], :]
