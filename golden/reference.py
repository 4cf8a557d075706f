"""Exact GEMM references of SPEC section 2, used to check the RTL bit for bit.

- :func:`int_gemm`: INT4/UINT4 x INT4/UINT4 codes, exact int64 result.
- :func:`log_gemm`: FP4 codes x INT4/UINT4 codes, exact int64 shift-accumulate
  (``sum_k (-1)^s * x * 4^(e-1)``, no scale applied).
- :func:`fp16_gemm`: binary16 x binary16 -> binary32, accumulated in ascending
  k with one round-to-nearest-even per add; the first product passes through.

Products come from the format objects' rules (:mod:`golden.formats.base`),
evaluated with :data:`golden.formats.TORCH_OPS`, so these references and the
hardware share one definition of every product.
"""

from __future__ import annotations

import torch

from .formats import FP4_RADIX4, INT4, TORCH_OPS, UINT4, IntegerFormat, LogFormat, NumberFormat
from .formats._checks import code_tensor
from .formats.fp16 import canonicalize_nan32

__all__ = ["int_gemm", "log_gemm", "fp16_gemm", "int_products", "log_products", "exact_integer_matmul"]

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
