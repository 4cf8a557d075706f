"""IEEE binary16 operands with binary32 accumulation: the FP16 baseline (SPEC sections 2 and 3).

Bit patterns travel as integer tensors (``int64`` holding the unsigned
pattern) so that NaN payloads and signed zeros survive every comparison.
The product of two binary16 numbers is exact in binary32 (11-bit significands
give at most 22 bits, and the exponent range fits); accumulation is a binary32
add with one round-to-nearest-even. Every NaN result is the canonical quiet
NaN ``0x7FC00000``.

The torch CPU kernels are IEEE-correct for binary32 (gradual underflow, RNE);
:func:`fp32_add_bits` and :func:`fp16_product_bits` rely on that and normalise
NaNs afterwards.
"""

from __future__ import annotations

from fourbit.util.lazy import lazy_import

from ._checks import code_tensor
from .base import NumberFormat

# Imported at its first use: importing hw.kinds need not take seconds (fourbit.util.lazy).
torch = lazy_import("torch")

__all__ = [
    "FP16",
    "FP32",
    "BinaryFloatFormat",
    "CANONICAL_NAN32",
    "fp16_bits_to_float",
    "fp32_bits_to_float",
    "float_to_fp32_bits",
    "float_to_fp16_bits",
    "fp16_product_bits",
    "fp32_add_bits",
    "canonicalize_nan32",
]

CANONICAL_NAN32 = 0x7FC00000


class BinaryFloatFormat(NumberFormat):
    """An IEEE 754 binary interchange format.

    Parameters
    ----------
    name : str
    exponent_bits, mantissa_bits : int

    Attributes
    ----------
    bits : int
        ``1 + exponent_bits + mantissa_bits``.
    bias : int
    """

    def __init__(self, *, name: str, exponent_bits: int, mantissa_bits: int):
        self.name, self.exponent_bits, self.mantissa_bits = name, exponent_bits, mantissa_bits
        self.bits = 1 + exponent_bits + mantissa_bits
        self.bias = (1 << (exponent_bits - 1)) - 1


FP16 = BinaryFloatFormat(name="fp16", exponent_bits=5, mantissa_bits=10)
FP32 = BinaryFloatFormat(name="fp32", exponent_bits=8, mantissa_bits=23)


def _unsigned_to_signed(bits: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    bits = bits.to(torch.int64) & ((1 << width) - 1)
    return torch.where(bits >= (1 << (width - 1)), bits - (1 << width), bits).to(dtype)


def fp16_bits_to_float(bits: torch.Tensor) -> torch.Tensor:
    """float16 tensor from unsigned binary16 bit patterns."""
    code_tensor("fp16_bits_to_float", "bits", bits)
    return _unsigned_to_signed(bits, 16, torch.int16).view(torch.float16)


def fp32_bits_to_float(bits: torch.Tensor) -> torch.Tensor:
    """float32 tensor from unsigned binary32 bit patterns."""
    code_tensor("fp32_bits_to_float", "bits", bits)
    return _unsigned_to_signed(bits, 32, torch.int32).view(torch.float32)


def float_to_fp32_bits(x: torch.Tensor) -> torch.Tensor:
    """Unsigned binary32 bit patterns (int64) of a float32 tensor."""
    if x.dtype != torch.float32:
        raise TypeError(f"float_to_fp32_bits: expected a float32 tensor, not {x.dtype}")
    return x.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF


def float_to_fp16_bits(x: torch.Tensor) -> torch.Tensor:
    """Unsigned binary16 bit patterns (int64) of a float16 tensor."""
    if x.dtype != torch.float16:
        raise TypeError(f"float_to_fp16_bits: expected a float16 tensor, not {x.dtype}")
    return x.contiguous().view(torch.int16).to(torch.int64) & 0xFFFF


def canonicalize_nan32(x: torch.Tensor) -> torch.Tensor:
    """Replace every NaN of a float32 tensor by the canonical quiet NaN 0x7FC00000."""
    canonical = torch.tensor(CANONICAL_NAN32, dtype=torch.int32, device=x.device).view(torch.float32)
    return torch.where(torch.isnan(x), canonical, x)


def fp16_product_bits(a_bits: torch.Tensor, b_bits: torch.Tensor) -> torch.Tensor:
    """binary32 bits of the exact product ``fp32(a) * fp32(b)`` of binary16 bit patterns."""
    product = fp16_bits_to_float(a_bits).to(torch.float32) * fp16_bits_to_float(b_bits).to(torch.float32)
    return float_to_fp32_bits(canonicalize_nan32(product))


def fp32_add_bits(x_bits: torch.Tensor, y_bits: torch.Tensor) -> torch.Tensor:
    """binary32 bits of ``x + y`` rounded to nearest even (canonical NaN)."""
    total = fp32_bits_to_float(x_bits) + fp32_bits_to_float(y_bits)
    return float_to_fp32_bits(canonicalize_nan32(total))
