"""The integer steps of one quantized layer (SPEC section 2), as pure functions on matrices.

Training (:mod:`golden.layers`) and tensor capture are built from these
functions only, and the RTL datapath implements the same steps:

forward
    ``acc = X @ W^T`` of INT4/UINT4 activation codes and INT4 SAWB weight codes
    (:func:`forward_gemm`), plus the bias in accumulator units
    (:func:`bias_codes`); its real unit is ``scale_x * scale_w``. The next
    layer's UINT4 codes come from :func:`golden.requant.requantize`.
backward
    The upstream gradient ``dY`` (an integer accumulator with its unit, or a
    float tensor from the host) is quantized to FP4 twice (TPR,
    :func:`quantize_grad`); ``dX = dY W^T`` and ``dW = dY^T X`` are
    shift-accumulate GEMMs of FP4 codes with integer codes
    (:func:`log_matmul`, real unit :func:`grad_unit` times the integer
    operand's scale).

Exact fast path: the GEMMs run as float matmuls of small integers. A float
sum of integers is exact, in any order, while every partial sum stays below
2^24 (float32) or 2^53 (float64) in magnitude; :func:`exact_matmul` proves
that bound from the operands' largest magnitudes before every product and
picks float32 or float64 accordingly (or refuses). Results are float tensors
holding exact integers; they equal :func:`golden.reference.int_gemm` /
:func:`golden.reference.log_gemm` bit for bit (tested).
"""

import functools
import math

import torch

from .formats import FP4_RADIX4, TORCH_OPS, LogFormat

__all__ = [
    "exact_matmul", "forward_gemm", "bias_codes", "grad_multipliers", "log_matmul",
    "grad_unit", "quantize_grad", "FLOAT32_EXACT", "FLOAT64_EXACT",
]

#: Integers of magnitude below these are exact in float32 / float64.
FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53


def exact_matmul(a, b, a_max, b_max):
    """``a @ b`` of float matrices holding integers with ``|a| <= a_max``, ``|b| <= b_max``, exactly.

    Chooses float32 when ``K * a_max * b_max < 2^24``, else float64 when below
    2^53, where every partial sum of integer products is an exact integer.

    Returns
    -------
    torch.Tensor
        float32 or float64 matrix of exact integers.
    """
    bound = a.shape[-1] * a_max * b_max
    if bound < FLOAT32_EXACT:
        return a.to(torch.float32) @ b.to(torch.float32)
    if bound < FLOAT64_EXACT:
        return a.to(torch.float64) @ b.to(torch.float64)
    raise OverflowError(f"GEMM bound {bound} exceeds 2^53: cannot be computed exactly in float64")


def forward_gemm(x_codes, w_codes, x_max):
    """Forward GEMM ``acc = X @ W^T`` of integer codes.

    Parameters
    ----------
    x_codes : torch.Tensor
        M x K activation codes (float tensor of integers), ``|x| <= x_max``.
    w_codes : torch.Tensor
        N x K INT4 weight codes (float tensor of integers in -7..7).
    x_max : int
        8 for INT4 inputs, 15 for UINT4.

    Returns
    -------
    torch.Tensor
        M x N exact integer accumulator (float32 or float64).
    """
    return exact_matmul(x_codes, w_codes.t(), x_max, 7)


def bias_codes(bias, acc_unit):
    """Bias in accumulator units: ``round_half_even(b / acc_unit)`` as float64 integers."""
    return torch.round(bias.detach().to(torch.float64) / acc_unit)


@functools.lru_cache(maxsize=None)
def _multiplier_table(fmt, device):
    codes = torch.arange(fmt.num_codes, dtype=torch.int64)
    # The format's own product rule applied to x = 1: (-1)^s * radix^(e-1), 0 for e = 0.
    values = fmt.scale(codes, torch.ones_like(codes), TORCH_OPS)
    return values.to(device=device, dtype=torch.float32)


def grad_multipliers(codes, fmt=FP4_RADIX4):
    """Integer multipliers ``(-1)^s * radix^(e-1)`` (0 for e = 0) of gradient codes, as float32."""
    return _multiplier_table(fmt, codes.device)[codes.to(torch.int64)]


def log_matmul(g_codes, x_codes, x_max, fmt=FP4_RADIX4):
    """Shift-accumulate GEMM ``sum_k (-1)^s(g[m,k]) * x[k,n] * radix^(e-1)`` of FP4 codes with integer codes.

    Parameters
    ----------
    g_codes : torch.Tensor
        M x K gradient codes (uint8).
    x_codes : torch.Tensor
        K x N integer codes (float tensor of integers), ``|x| <= x_max``.
    x_max : int
    fmt : LogFormat

    Returns
    -------
    torch.Tensor
        M x N exact integer result (float32 or float64), equal to
        :func:`golden.reference.log_gemm` for radix 4.
    """
    top = float(fmt.radix) ** (fmt.max_exponent - 1)
    return exact_matmul(grad_multipliers(g_codes, fmt), x_codes, top, x_max)


def grad_unit(fmt, scale, phase):
    """Real value of multiplier 1 of gradient codes: ``S * 2^-phase * radix^-(max_exponent-1)``."""
    return math.ldexp(scale, -phase - fmt.shift_per_step * (fmt.max_exponent - 1))


def quantize_grad(g, unit, phase, fmt=FP4_RADIX4, *, rounding="nearest", ties="away", seed=1):
    """FP4 codes and scale of an upstream gradient.

    Parameters
    ----------
    g : torch.Tensor
        int64 counts of ``unit`` (an integer dX accumulator) or real float values (``unit = 1``).
    unit : float
    phase : int
    fmt : LogFormat
    rounding, ties, seed
        As :func:`golden.formats.fp4_quantize`.

    Returns
    -------
    codes : torch.Tensor
        uint8 codes.
    scale : float
        GradScale ``S``.
    """
    if not isinstance(fmt, LogFormat):
        raise TypeError(f"gradient format must be a LogFormat, not {type(fmt).__name__}")
    return fmt.quantize(g, phase=phase, unit=unit, rounding=rounding, ties=ties, seed=seed)
