"""Exact GEMM references of SPEC section 2, used to check the RTL bit for bit.

- :func:`int_gemm`: INT4/UINT4 x INT4/UINT4 codes, exact int64 result.
- :func:`log_gemm`: FP4 codes x INT4/UINT4 codes, exact int64 shift-accumulate
  (``sum_k (-1)^s * x * 4^(e-1)``, no scale applied).
- :func:`fp16_gemm`: binary16 x binary16 -> binary32, accumulated in ascending
  k with one round-to-nearest-even per add; the first product passes through.
- :func:`block_gemm`: MXFP4 / NVFP4 codes and block scales -> binary32 (SPEC 7):
  exact integer block sums, one rounding per block term, FP32 adds in block order.

Products come from the format objects' rules (:mod:`golden.formats.base`),
evaluated with :data:`golden.formats.TORCH_OPS`, so these references and the
hardware share one definition of every product.
"""

from __future__ import annotations

import torch

from .formats import FP4_RADIX4, INT4, TORCH_OPS, UINT4, IntegerFormat, LogFormat, NumberFormat
from .formats._checks import code_tensor
from .formats.blockfp import E2M1, MXFP4, block_format, check_block_codes, check_scale_codes, pow2_f64
from .formats.fp16 import canonicalize_nan32

__all__ = [
    "int_gemm",
    "log_gemm",
    "fp16_gemm",
    "block_gemm",
    "block_sums",
    "block_terms",
    "scaled_block_sums",
    "int_products",
    "log_products",
    "exact_integer_matmul",
]

_EXACT_FLOAT64 = 1 << 53


def _integer_format(signed: bool) -> IntegerFormat:
    return INT4 if signed else UINT4


def _check_codes(func: str, name: str, codes: torch.Tensor, fmt: NumberFormat, *, as_values: bool) -> torch.Tensor:
    code_tensor(func, name, codes)
    if codes.dim() != 2:
        raise ValueError(f"{func}: argument '{name}' must be a 2-D matrix, got shape {tuple(codes.shape)}")
    codes = codes.to(torch.int64)
    lo, hi = (fmt.min_value, fmt.max_value) if as_values else (0, fmt.num_codes - 1)
    if codes.numel() and bool(((codes < lo) | (codes > hi)).any()):
        raise ValueError(f"{func}: argument '{name}' holds values outside {fmt.name} range {lo}..{hi}")
    return codes


def _check_inner(func: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{func}: inner dimensions differ: {tuple(a.shape)} @ {tuple(b.shape)}")


def exact_integer_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` of int64 matrices, exactly.

    Uses a float64 matmul when every partial sum is an integer below 2^53
    (then each addition is exact whatever the order), else int64 on the CPU.
    """
    k = a.shape[1]
    bound = k * (int(a.abs().max()) if a.numel() else 0) * (int(b.abs().max()) if b.numel() else 0)
    if bound < _EXACT_FLOAT64:
        return (a.to(torch.float64) @ b.to(torch.float64)).to(torch.int64)
    return (a.cpu() @ b.cpu()).to(a.device)


def int_products(a: torch.Tensor, b: torch.Tensor, a_signed=True, b_signed=True) -> torch.Tensor:
    """Element-wise products of 4-bit integer codes (raw nibbles or values), as the int4 MAC forms them.

    ``a_signed`` may be a bool or a tensor of mode bits (broadcast with ``a``).
    """
    x = INT4.value(a, TORCH_OPS, signed=a_signed)
    return INT4.scale(b, x, TORCH_OPS, signed=b_signed)


def log_products(g: torch.Tensor, x: torch.Tensor, x_signed=True) -> torch.Tensor:
    """Element-wise FP4 x INT4/UINT4 products ``(-1)^s * x * 4^(e-1)`` (0 where e = 0), as the log MAC forms them."""
    return FP4_RADIX4.scale(g, INT4.value(x, TORCH_OPS, signed=x_signed), TORCH_OPS)


def int_gemm(a: torch.Tensor, b: torch.Tensor, *, a_signed: bool = True, b_signed: bool = True) -> torch.Tensor:
    """Exact ``A @ B`` of INT4 (``*_signed``) or UINT4 code matrices, int64.

    Parameters
    ----------
    a : torch.Tensor
        M x K integer codes: values -8..7 when ``a_signed``, else 0..15.
    b : torch.Tensor
        K x N integer codes, likewise per ``b_signed``.
    """
    fa, fb = _integer_format(a_signed), _integer_format(b_signed)
    a = _check_codes("int_gemm", "a", a, fa, as_values=True)
    b = _check_codes("int_gemm", "b", b, fb, as_values=True)
    _check_inner("int_gemm", a, b)
    return exact_integer_matmul(a, b)


def log_gemm(g: torch.Tensor, x: torch.Tensor, *, x_signed: bool = True, fmt: LogFormat = FP4_RADIX4) -> torch.Tensor:
    """Exact ``sum_k (-1)^s(g[m,k]) * x[k,n] * radix^(e(g[m,k]) - 1)``, int64 (no scale applied).

    Parameters
    ----------
    g : torch.Tensor
        M x K codes of ``fmt`` (FP4: 0..15).
    x : torch.Tensor
        K x N integer codes: -8..7 when ``x_signed``, else 0..15.
    fmt : LogFormat
        The gradient format (radix-4 FP4 by default; ``FP4_RADIX2`` for LUQ-style gradients).
    """
    if not isinstance(fmt, LogFormat):
        raise TypeError(f"log_gemm: argument 'fmt' must be a LogFormat, not {type(fmt).__name__}")
    g = _check_codes("log_gemm", "g", g, fmt, as_values=False)
    x = _check_codes("log_gemm", "x", x, _integer_format(x_signed), as_values=True)
    _check_inner("log_gemm", g, x)
    # The shift rule is linear in x: g's multiplier is its product with 1.
    multiplier = fmt.scale(g, torch.ones_like(g), TORCH_OPS)
    return exact_integer_matmul(multiplier, x)


def fp16_gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``A @ B`` of binary16 matrices into binary32, the FP16 MAC's arithmetic.

    Each product is exact in binary32; output ``[m, n]`` starts from the
    ``k = 0`` product and adds ``k = 1, 2, ...`` in order with one
    round-to-nearest-even each; NaNs are canonical (0x7FC00000). K = 0 gives +0.

    Parameters
    ----------
    a, b : torch.Tensor
        float16 matrices, M x K and K x N.
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.float16:
            raise TypeError(f"fp16_gemm: argument '{name}' must be a float16 torch.Tensor")
        if t.dim() != 2:
            raise ValueError(f"fp16_gemm: argument '{name}' must be a 2-D matrix, got shape {tuple(t.shape)}")
    _check_inner("fp16_gemm", a, b)
    a32, b32 = a.to(torch.float32), b.to(torch.float32)
    m, k = a.shape
    acc = torch.zeros((m, b.shape[1]), dtype=torch.float32, device=a.device)
    for i in range(k):
        product = a32[:, i : i + 1] * b32[i : i + 1, :]
        acc = product if i == 0 else acc + product
    return canonicalize_nan32(acc)


def _block_operands(func: str, a_codes, a_scales, b_codes, b_scales, fmt):
    bf = block_format(func, fmt)
    a = check_block_codes(func, "a_codes", a_codes)
    b = check_block_codes(func, "b_codes", b_codes)
    sa = check_scale_codes(func, "a_scales", a_scales, bf)
    sb = check_scale_codes(func, "b_scales", b_scales, bf)
    for name, t in (("a_codes", a), ("b_codes", b), ("a_scales", sa), ("b_scales", sb)):
        if t.dim() != 2:
            raise ValueError(f"{func}: argument '{name}' must be a 2-D matrix, got shape {tuple(t.shape)}")
    _check_inner(func, a, b)
    (m, k), n = a.shape, b.shape[1]
    blocks = bf.num_blocks(k)
    for name, t, shape in (("a_scales", sa, (m, blocks)), ("b_scales", sb, (blocks, n))):
        if tuple(t.shape) != shape:
            raise ValueError(f"{func}: argument '{name}' must have shape {shape} for K = {k}, got {tuple(t.shape)}")
    return bf, a, sa, b, sb


def block_sums(a_codes: torch.Tensor, b_codes: torch.Tensor, block_size: int) -> torch.Tensor:
    """Exact block sums ``P[b, m, n] = sum over block b of N_a * N_b`` (int64; ``N = 2 * E2M1 value``).

    K is padded with zero codes to whole blocks.
    """
    na = E2M1.int_value(a_codes.to(torch.int64), TORCH_OPS)
    nb = E2M1.int_value(b_codes.to(torch.int64), TORCH_OPS)
    (m, k), n = na.shape, nb.shape[1]
    pad = -k % block_size
    na = torch.nn.functional.pad(na, (0, pad)).reshape(m, -1, block_size).transpose(0, 1)
    nb = torch.nn.functional.pad(nb, (0, 0, 0, pad)).reshape(-1, block_size, n)
    # |P| <= block_size * 144: every partial sum is an integer far below 2^53, so float64 is exact.
    return torch.bmm(na.to(torch.float64), nb.to(torch.float64)).to(torch.int64)


def block_terms(a_codes, a_scales, b_codes, b_scales, fmt) -> torch.Tensor:
    """Block terms ``T[b, m, n]`` rounded once to binary32 (SPEC 7), before the FP32 accumulation.

    The exact term ``P / 4 * 2^(Xa + Xb - 254)`` (MXFP4) or ``P / 4 * value(sa) * value(sb)``
    (NVFP4) is a float64 without rounding: ``|P| <= 4608`` has 13 bits, an E4M3
    significand 4, and the exponents stay within -276..252, inside float64's
    normal range. A float64 -> float32 conversion of an exact value is one
    correct rounding (nearest even, gradual underflow, overflow to inf).
    """
    bf, a, sa, b, sb = _block_operands("block_terms", a_codes, a_scales, b_codes, b_scales, fmt)
    return scaled_block_sums(block_sums(a, b, bf.block_size), sa.t().unsqueeze(-1), sb.unsqueeze(1), bf)


def scaled_block_sums(p: torch.Tensor, a_scales: torch.Tensor, b_scales: torch.Tensor, fmt) -> torch.Tensor:
    """Terms ``P / 4 * factor(a_scale) * factor(b_scale)`` rounded once to binary32, element-wise (SPEC 7).

    ``p``: integer block sums; ``a_scales``, ``b_scales``: their blocks' scale
    codes (shapes broadcast with ``p``); ``fmt``: ``"mxfp4"`` / ``"nvfp4"`` or
    its :class:`~golden.formats.blockfp.BlockFormat`. The exact term is a float64
    (see :func:`block_terms`), so its conversion to float32 is the one rounding.
    """
    bf = block_format("scaled_block_sums", fmt)
    p = p.to(torch.float64)
    a_scales, b_scales = a_scales.to(torch.int64), b_scales.to(torch.int64)
    if bf is MXFP4:
        # 2^(Xa + Xb - 254) / 4 in one exact power of two.
        exact = p * pow2_f64(a_scales + b_scales - 254 - 2)
    else:
        exact = p / 4 * bf.scale_values(a_scales) * bf.scale_values(b_scales)
    return exact.to(torch.float32)


def block_gemm(a_codes, a_scales, b_codes, b_scales, fmt) -> torch.Tensor:
    """MXFP4 / NVFP4 GEMM into binary32, the block-scaled arrays' arithmetic (SPEC 7).

    For every output, block ``b``'s term (see :func:`block_terms`) is rounded
    once to binary32; the terms are added in ascending ``b`` starting from
    +0.0, one round-to-nearest-even per add; NaNs are canonical (0x7FC00000).
    NVFP4's tensor scales are not applied.

    Parameters
    ----------
    a_codes : torch.Tensor or numpy.ndarray
        M x K E2M1 codes (0..15).
    a_scales : torch.Tensor or numpy.ndarray
        M x ceil(K / bs) scale codes (E8M0 for MXFP4, E4M3 for NVFP4; no NaN codes).
    b_codes : torch.Tensor or numpy.ndarray
        K x N E2M1 codes.
    b_scales : torch.Tensor or numpy.ndarray
        ceil(K / bs) x N scale codes.
    fmt : {"mxfp4", "nvfp4"}

    Returns
    -------
    torch.Tensor
        M x N float32.
    """
    terms = block_terms(a_codes, a_scales, b_codes, b_scales, fmt)
    acc = torch.zeros(terms.shape[1:], dtype=torch.float32, device=terms.device)
    for term in terms:
        acc = acc + term
    return canonicalize_nan32(acc)
