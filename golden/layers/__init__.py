"""Quantized layers that train through the hardware's integer pipeline, and model conversion.

:class:`QLinear` and :class:`QConv2d` (an im2col GEMM) compute with INT4 SAWB
weight codes and INT4 (image) or UINT4 (PACT) activation codes, exactly as in
:mod:`golden.pipeline`; :class:`PACT` replaces ``nn.ReLU`` and turns a
quantized layer's integer accumulator into the next layer's UINT4 codes with
the integer requantizer of :mod:`golden.requant`. :func:`convert` swaps the
layers of an ordinary ``nn.Module``.

How codes travel between layers
-------------------------------
Module outputs hold real values, so that any float operation (BatchNorm,
residual adds, a high-precision classifier) can consume them. They are
:class:`golden.quantized.QuantizedTensor` s carrying the exact state: a
quantized layer's output its integer accumulator and unit
(:class:`~golden.quantized.AccState`), :class:`PACT`'s output its UINT4 codes
and step (:class:`~golden.quantized.CodeState`). The next :class:`PACT` /
quantized layer reads that state, so no value is ever re-derived from a
rounded float. The state follows the tensor through reshapes, views,
permutations, indexing, flattening and max pooling (functional or as modules,
inside checkpointing too); any other operation returns a plain tensor, and
then:

- :class:`PACT` quantizes its float input with :func:`golden.formats.quantize_pact`
  (the host path, e.g. after BatchNorm);
- a quantized layer with ``input_mode="codes"`` raises a ``RuntimeError``; one
  with ``"auto"`` (what :func:`convert` makes) quantizes the float input with
  the signed INT4 activation quantizer.

In the backward pass a quantized layer passes the real gradient
``dX_int * unit`` to autograd and the unit to its producer through a
:class:`GradLink`; the producer recovers ``dX_int`` (checked exact) and
quantizes the integer accumulator with that unit, as the hardware does. When
the integers cannot be recovered (several consumers, or ``|dX_int|`` beyond
float32's exact range) the producer quantizes the float gradient instead and
counts the step in ``inexact_grad_steps``.

Bias
----
A quantized layer's bias is quantized to accumulator units
(:func:`golden.pipeline.bias_codes`) and added to the accumulator before
requantization; its gradient is the host-side sum of the upstream gradient.

The package holds one module per layer kind: :mod:`.linear`, :mod:`.conv`,
:mod:`.pact` and :mod:`.matmul`, on what they share (:mod:`.gemm`,
:mod:`.config`); :mod:`.convert` converts models. Tensor capture is an
observer (:class:`golden.capture.TensorCapture`): a layer reports each
operation of a recorded step with its own tensors, and the capture builds,
checks and stores the GEMM matrices.
"""

from .config import INPUT_MODES, QuantConfig
from .conv import QConv2d
from .convert import (
    CODE_PRESERVING_MODULES,
    HOST_FLOAT_MODULES,
    OPAQUE_MODULES,
    convert,
    describe_fp32,
    fp32_modules,
    quantized_layers,
)
from .gemm import GradLink
from .linear import QLinear
from .matmul import QMatMul
from .pact import PACT

__all__ = [
    "QuantConfig",
    "QLinear",
    "QConv2d",
    "QMatMul",
    "PACT",
    "CODE_PRESERVING_MODULES",
    "GradLink",
    "convert",
    "quantized_layers",
    "fp32_modules",
    "describe_fp32",
    "OPAQUE_MODULES",
    "INPUT_MODES",
    "HOST_FLOAT_MODULES",
]
