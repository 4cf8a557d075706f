"""Bit-exact number formats of fourbit (SPEC sections 1 and 5).

The public API of SPEC section 5 (torch tensors in, torch tensors out, CPU or CUDA):

- :func:`quantize_input` (images -> INT4), :func:`sawb_step` and
  :func:`quantize_weight` (SAWB -> INT4), :func:`quantize_pact` (PACT -> UINT4)
  and the autograd function :class:`PactQuantize` / :func:`pact`;
- :func:`fp4_quantize` and :func:`fp4_decode` (radix-4 FP4 with GradScale and TPR);
- :func:`block_quantize` and :func:`block_decode` (MXFP4 and NVFP4, SPEC section 7).

The format objects (:data:`INT4`, :data:`UINT4`, :data:`FP4_RADIX4`,
:data:`FP16`) carry codes, value ranges and product rules; the hardware builds
its multipliers from the same objects (see :mod:`golden.formats.base`).
"""

from .base import IntegerFormat, NumberFormat, Ops, ProductRange, ScaleFormat, max_safe_k
from .blockfp import (
    BLOCK_FORMATS,
    E2M1,
    E4M3,
    E8M0,
    MXFP4,
    NVFP4,
    BlockFormat,
    MiniFloatFormat,
    PowerOfTwoFormat,
    block_decode,
    block_quantize,
)
from .fp4 import FP4_RADIX2, FP4_RADIX4, LogFormat, fp4_decode, fp4_quantize, grad_scale_exponent
from .fp16 import CANONICAL_NAN32, FP16, FP32, BinaryFloatFormat
from .integer import (
    INT4,
    SAWB_COEFFICIENTS,
    UINT4,
    pact,
    quantize_activation,
    quantize_input,
    quantize_pact,
    quantize_probability,
    quantize_weight,
    sawb_step,
)
from .ops import TORCH_OPS, TorchOps


def __getattr__(name):
    # PEP 562: the torch autograd class PactQuantize is built on first access (integer.py), so that
    # importing golden.formats loads no torch.
    if name == "PactQuantize":
        from .integer import PactQuantize

        return PactQuantize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Every format by name.
FORMATS = {f.name: f for f in (INT4, UINT4, FP4_RADIX4, FP4_RADIX2, FP16, FP32, E2M1, E4M3, E8M0)}

__all__ = [
    "quantize_input",
    "sawb_step",
    "quantize_weight",
    "quantize_pact",
    "quantize_activation",
    "quantize_probability",
    "PactQuantize",
    "pact",
    "fp4_quantize",
    "fp4_decode",
    "grad_scale_exponent",
    "block_quantize",
    "block_decode",
    "BlockFormat",
    "MiniFloatFormat",
    "PowerOfTwoFormat",
    "E2M1",
    "E4M3",
    "E8M0",
    "MXFP4",
    "NVFP4",
    "BLOCK_FORMATS",
    "SAWB_COEFFICIENTS",
    "NumberFormat",
    "IntegerFormat",
    "ScaleFormat",
    "LogFormat",
    "BinaryFloatFormat",
    "Ops",
    "TorchOps",
    "TORCH_OPS",
    "ProductRange",
    "max_safe_k",
    "INT4",
    "UINT4",
    "FP4_RADIX4",
    "FP4_RADIX2",
    "FP16",
    "FP32",
    "CANONICAL_NAN32",
    "FORMATS",
]
