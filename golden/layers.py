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
"""

import collections
import dataclasses
import math
import zlib

import torch
import torch.nn.functional as F
from torch import nn

from . import fused, kernels, pipeline
from .formats import quantize_input
from .quantized import AccState, CodeState, plain, state_of, with_state
from .requant import QMAX, requant_params, requantize_pact

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

#: Input quantizers of a quantized layer (see :class:`QLinear`).
INPUT_MODES = ("image", "codes", "signed", "auto")
#: Operand quantizers of a :class:`QMatMul`.
OPERAND_KINDS = ("signed", "probability")

#: Operations a hardware host computes in float next to the 4-bit GEMMs: :func:`convert` leaves them as they
#: are and :func:`fp32_modules` lists them.
HOST_FLOAT_MODULES = (
    nn.LayerNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.GroupNorm,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Embedding,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Dropout,
    nn.LeakyReLU,
)


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """Every knob of the 4-bit pipeline (SPEC section 1 defaults).

    Attributes
    ----------
    grad_format : golden.formats.LogFormat
        Gradient format (radix-4 FP4 by default).
    sawb_c : tuple of float
        SAWB coefficients (c1, c2).
    pact_alpha : float
        Initial PACT clip value.
    tpr : bool
        Two-phase rounding: quantize dY twice (phases ``dx_phase`` / ``dw_phase``);
        otherwise once with ``dx_phase`` for both GEMMs.
    dx_phase, dw_phase : int
        TPR phase feeding the dX and the dW GEMM.
    rounding : str
        ``"nearest"``, ``"log"`` or ``"stochastic"`` (see :mod:`golden.formats.fp4`).
    ties : str
        ``"away"`` or ``"zero"``.
    integer_requant : bool
        Requantize accumulators with (M0, shift) (the hardware); if False, PACT
        quantizes the float output (the host path, for ablation).
    input_quantizer : bool
        Quantize images with the INT4 input quantizer when the first layer is quantized.
    keep_first, keep_last : bool
        Keep the first / last weight layer in FP32 (both True by default, as in the paper).
    """

    grad_format: object = None
    sawb_c: tuple = (12.68, 12.80)
    pact_alpha: float = 4.0
    tpr: bool = True
    dx_phase: int = 0
    dw_phase: int = 1
    rounding: str = "nearest"
    ties: str = "away"
    integer_requant: bool = True
    input_quantizer: bool = True
    keep_first: bool = True
    keep_last: bool = True

    def __post_init__(self):
        from .formats import FP4_RADIX4, LogFormat

        if self.grad_format is None:
            object.__setattr__(self, "grad_format", FP4_RADIX4)
        if not isinstance(self.grad_format, LogFormat):
            raise TypeError("grad_format must be a golden.formats.LogFormat")
        for name in ("dx_phase", "dw_phase"):
            if getattr(self, name) not in range(self.grad_format.phases):
                raise ValueError(f"{name} must be in 0..{self.grad_format.phases - 1}")
        if not self.pact_alpha > 0:
            raise ValueError("pact_alpha must be > 0")
        if self.rounding not in ("nearest", "log", "stochastic"):
            raise ValueError(f"rounding must be nearest, log or stochastic, not {self.rounding!r}")
        if self.ties not in ("away", "zero"):
            raise ValueError(f"ties must be away or zero, not {self.ties!r}")


class GradLink:
    """Carries a consumer's dX unit back to the producer of its input codes (one forward pass).

    Attributes
    ----------
    consumers : int
        Quantized layers that read the codes.
    unit : float or None
        Real unit of the consumer's integer dX accumulator, set in its backward.
    """

    __slots__ = ("consumers", "unit")

    def __init__(self):
        self.consumers, self.unit = 0, None


class _QGemm(torch.autograd.Function):
    """One quantized layer: integer forward GEMM, FP4 TPR backward GEMMs.

    The layer supplies the three exact GEMMs on its native tensor shapes
    (``_fwd``, ``_dx``, ``_dw``) and, for captures, their matrix form
    (``_matrices``).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, layer, tag, recomputing, link_out):
        cfg = layer.config
        # a checkpoint's recomputation is the same forward pass again: not counted twice
        paths = collections.Counter() if recomputing else layer.input_paths
        has_codes = isinstance(tag, CodeState) and tag.ints.shape == x.shape
        if layer.input_mode == "image":
            x_codes = quantize_input(x.detach()).to(torch.float32)
            x_step, x_max, x_signed, link_in = 1.0 / 15, 8, True, None
            x_real = x.detach()
            paths["image"] += 1
        elif layer.input_mode == "signed" or (layer.input_mode == "auto" and not has_codes):
            # A float activation of either sign (LayerNorm, GELU, a residual sum): the signed INT4
            # activation quantizer, formats.quantize_activation (the same float64 SAWB operations).
            x_codes, x_step = pipeline.quantize_weight_sawb(x, cfg.sawb_c, dtype=layer._codes_dtype)
            x_max, x_signed, link_in = 7, True, None
            x_real = x.detach()
            paths["signed"] += 1
        else:
            if not has_codes:
                raise RuntimeError(
                    f"quantized layer {layer.fourbit_name!r} expects UINT4 codes from a PACT activation "
                    "(through reshapes, indexing and max pooling only); its input comes from another operation"
                )
            x_codes, x_step, x_signed, link_in = tag.ints, tag.step, tag.signed, tag.link
            x_real = tag.real
            x_max = 8 if x_signed else QMAX
            if link_in is not None and not recomputing:
                # (a checkpoint's recomputation is the same consumer again)
                link_in.consumers += 1
            paths["codes"] += 1
        w_codes, w_step = pipeline.quantize_weight_sawb(weight, cfg.sawb_c, dtype=layer._codes_dtype)
        x_codes = x_codes.to(layer._codes_dtype)
        acc = layer._fwd(x_codes, w_codes, x_max)
        unit = x_step * w_step
        b_codes = None
        total = acc
        if bias is not None:
            b_codes = pipeline.bias_codes(bias, unit)
            b_max = float(b_codes.abs().max()) if b_codes.numel() else 0.0
            bound = w_codes[0].numel() * x_max * 7 + b_max
            if acc.dtype == torch.int32 and bound < pipeline.INT32_EXACT:
                # |acc| + |b| < 2^31: the integer sum is exact in int32.
                total = acc + layer._channel_view(b_codes.to(torch.int32), acc)
            elif acc.dtype in (torch.float32, torch.int32) and bound < pipeline.FLOAT32_EXACT:
                # |acc| + |b| < 2^24: the integer sum is exact in float32.
                total = acc + layer._channel_view(b_codes.to(torch.float32), acc)
            else:
                total = acc.to(torch.float64) + layer._channel_view(b_codes, acc)
        cap = layer.capture
        if cap is not None and cap.active:
            xm, wm, accm = layer._matrices(x_codes, w_codes, acc)
            check = pipeline.forward_gemm(xm, wm, x_max)
            if not torch.equal(check.to(torch.float64), accm.to(torch.float64)):
                raise AssertionError(f"{layer.fourbit_name}: fast forward GEMM differs from the matrix GEMM")
            # Unquantized operands (an FP16 baseline's): the float activation and master weights.
            xf, wf, _ = layer._matrices(x.detach() if x_real is None else x_real, weight.detach(), None)
            cap.record(
                layer.fourbit_name,
                "fwd",
                kind="int4",
                a=xm,
                b=wm.t(),
                c=check,
                a_signed=x_signed,
                b_signed=True,
                scale_a=x_step,
                scale_b=w_step,
                bias=b_codes,
                a_float=xf,
                b_float=wf.t(),
            )
        y = _scaled(total, unit, x.dtype)
        ctx.layer = layer
        ctx.state = (x_codes, w_codes, x_step, w_step, x_max, x_signed, link_in)
        capturing = cap is not None and cap.active
        ctx.x_float, ctx.w_float = (xf, weight.detach()) if capturing else (None, None)
        ctx.link_out = link_out
        ctx.has_bias = bias is not None
        layer._out_tag = AccState(total, unit, ctx.link_out, layer.fourbit_name)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        layer, cfg = ctx.layer, ctx.layer.config
        x_codes, w_codes, x_step, w_step, x_max, x_signed, link_in = ctx.state
        x_float, w_float = ctx.x_float, ctx.w_float
        ctx.x_float = ctx.w_float = None
        fmt = cfg.grad_format
        link = ctx.link_out
        g, unit = grad_y, 1.0
        seed = layer._next_seed()
        phases = (cfg.dx_phase, cfg.dw_phase) if cfg.tpr else (cfg.dx_phase, cfg.dx_phase)
        codes = None
        if link.unit is not None and link.consumers == 1:
            # Recover the consumer's integer dX accumulator from its float32 image (checked exact).
            counts, exact, amax = kernels.recover_counts(grad_y, link.unit)
            if exact:
                # |counts| < 2^24 iff |ints| < 2^24 (rounding to float32 is monotone, 2^24 exact).
                if amax < pipeline.FLOAT32_EXACT:
                    g, unit = counts, link.unit
                    if cfg.rounding in ("nearest", "log"):
                        codes = pipeline.quantize_counts(
                            counts, amax, unit, phases, fmt, rounding=cfg.rounding, ties=cfg.ties, keyed=True
                        )
                    else:
                        g = counts.to(torch.int64)
        if g is grad_y:
            g = grad_y.to(torch.float32)
            if link.unit is not None:
                layer.inexact_grad_steps += 1
        if codes is None:
            codes = pipeline.quantize_grad(
                g, unit, phases, fmt, rounding=cfg.rounding, ties=cfg.ties, seed=seed, keyed=True
            )
        cap = layer.capture
        capturing = cap is not None and cap.active
        if capturing:  # the records hold the codes themselves
            codes = {p: (c.codes() if isinstance(c, fused.KeyedCodes) else c, s) for p, (c, s) in codes.items()}
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0] and layer.input_mode != "image":
            g0, s0 = codes[phases[0]]
            dx = layer._dx(g0, w_codes, x_codes, fmt)
            dx_unit = pipeline.grad_unit(fmt, s0, phases[0]) * w_step
            if capturing:
                gm, wm = layer._grad_matrix(g0), w_codes.reshape(w_codes.shape[0], -1)
                dxm = pipeline.log_matmul(gm, wm, 7, fmt)
                if not torch.equal(layer._dx_from_matrix(dxm, x_codes.shape).to(torch.float64), dx.to(torch.float64)):
                    raise AssertionError(f"{layer.fourbit_name}: fast dX GEMM differs from the matrix GEMM")
                cap.record(
                    layer.fourbit_name,
                    "dx",
                    kind="log",
                    a=gm,
                    b=wm,
                    c=dxm,
                    b_signed=True,
                    scale_g=s0,
                    phase=phases[0],
                    unit_g=unit,
                    scale_b=w_step,
                    radix=fmt.radix,
                    a_float=layer._grad_matrix(grad_y.detach()),
                    b_float=w_float.reshape(w_codes.shape[0], -1),
                )
            if link_in is not None:
                link_in.unit = dx_unit
            grad_x = _scaled(dx, dx_unit, grad_y.dtype)
        if ctx.needs_input_grad[1]:
            g1, s1 = codes[phases[1]]
            dw = layer._dw(g1, x_codes, w_codes, x_max, fmt)
            dw_unit = pipeline.grad_unit(fmt, s1, phases[1]) * x_step
            if capturing:
                xm, _, _ = layer._matrices(x_codes, w_codes, None)
                g1t = layer._grad_matrix(g1).t()
                dwm = pipeline.log_matmul(g1t, xm, x_max, fmt)
                if not torch.equal(dwm.to(torch.float64), dw.reshape(dwm.shape).to(torch.float64)):
                    raise AssertionError(f"{layer.fourbit_name}: fast dW GEMM differs from the matrix GEMM")
                cap.record(
                    layer.fourbit_name,
                    "dw",
                    kind="log",
                    a=g1t,
                    b=xm,
                    c=dwm,
                    b_signed=x_signed,
                    scale_g=s1,
                    phase=phases[1],
                    unit_g=unit,
                    scale_b=x_step,
                    radix=fmt.radix,
                    a_float=layer._grad_matrix(grad_y.detach()).t(),
                    b_float=x_float,
                )
            grad_w = _scaled(dw, dw_unit, grad_y.dtype).reshape(layer.weight.shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = layer._bias_grad(grad_y)
        return grad_x, grad_w, grad_b, None, None, None, None


def _scaled(acc, unit, dtype):
    """``(acc.to(float64) * unit).to(dtype)``: the real value of an exact integer result (one pass for float32)."""
    if dtype == torch.float32:
        return kernels.scale(acc, unit)
    return (acc.to(torch.float64) * unit).to(dtype)


class _QuantLayer:
    """Mixin of the quantized layers' shared state."""

    #: dtype of the integer operands of the layer's GEMMs (int8 for torch._int_mm, else float32).
    _codes_dtype = torch.float32

    def _init_quant(self, config, input_mode, name):
        if not isinstance(config, QuantConfig):
            raise TypeError("config must be a QuantConfig")
        if input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode must be one of {', '.join(INPUT_MODES)}, not {input_mode!r}")
        self.config = config
        self.input_mode = input_mode
        self.fourbit_name = name
        self.capture = None
        self.inexact_grad_steps = 0
        # Forward passes per input quantizer ("image", "codes", "signed"): which path each layer took.
        self.input_paths = collections.Counter()
        self._seed_counter = 0
        self._out_tag = None
        self._link_without_grad = None

    def _link_for(self, recomputing, grad_enabled):
        """The :class:`GradLink` of this forward pass's output.

        A reentrant checkpoint (``torch.utils.checkpoint(..., use_reentrant=True)``) runs a
        segment without gradients, hands its output to the next layers, and in the backward
        pass runs it again to backpropagate through that second run. The next quantized layer
        read the first run's output, so the second run takes over the first run's link: the
        consumer's unit then reaches this layer as without checkpointing.
        """
        if recomputing and self._link_without_grad is not None:
            link, self._link_without_grad = self._link_without_grad, None
            return link
        link = GradLink()
        if not grad_enabled and not recomputing:
            self._link_without_grad = link
        return link

    def _next_seed(self):
        # A deterministic 32-bit seed per (layer, backward pass) for the counter-based generator of
        # stochastic rounding (formats.fp4.uniform16): crc32(name) xor counter * 0x9E3779B9 (mod 2^32).
        self._seed_counter += 1
        return (zlib.crc32(self.fourbit_name.encode()) ^ (self._seed_counter * 0x9E3779B9)) & 0xFFFFFFFF


class QLinear(nn.Linear, _QuantLayer):
    """``nn.Linear`` computed with INT4 weight codes and INT4/UINT4 input codes (see module docstring).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    config : QuantConfig
    input_mode : {"image", "codes", "signed", "auto"}
        ``"image"``: quantize the float input with the INT4 input quantizer;
        ``"codes"``: read the UINT4 codes tagged by the preceding :class:`PACT`
        (a ``RuntimeError`` without them); ``"signed"``: quantize the float
        input with the signed INT4 activation quantizer
        (:func:`golden.formats.quantize_activation`); ``"auto"``: ``"codes"``
        when the input carries them, else ``"signed"`` (what :func:`convert` uses).
    name : str
        Name used in captures and error messages.
    """

    def __init__(self, in_features, out_features, bias=True, *, config, input_mode="codes", name="linear"):
        super().__init__(in_features, out_features, bias=bias)
        self._init_quant(config, input_mode, name)

    @property
    def _codes_dtype(self):
        # int8 codes feed torch._int_mm directly (forward and both backward GEMMs) on the CPU.
        return torch.int8 if pipeline.INT_MM and self.weight.device.type == "cpu" else torch.float32

    def _fwd(self, x_codes, w_codes, x_max):
        xm = x_codes.reshape(-1, x_codes.shape[-1])
        acc = pipeline.forward_gemm(xm, w_codes, x_max, integer=True)
        return acc.reshape(*x_codes.shape[:-1], w_codes.shape[0])

    def _channel_view(self, b, acc):
        return b

    def _matrices(self, x_codes, w_codes, acc):
        xm = x_codes.reshape(-1, x_codes.shape[-1])
        return xm, w_codes, None if acc is None else acc.reshape(-1, acc.shape[-1])

    def _grad_matrix(self, g):
        return g.reshape(-1, g.shape[-1])

    def _dx_from_matrix(self, dxm, x_shape):
        return dxm.reshape(x_shape)

    def _dx(self, g_codes, w_codes, x_codes, fmt):
        gm = self._grad_matrix(g_codes)
        dxm = pipeline.log_int_mm(gm, w_codes, 7, fmt)
        if dxm is None:
            dxm = pipeline.log_bilinear(torch.matmul, gm, w_codes, terms=gm.shape[1], x_max=7, fmt=fmt, sum_dims=(1,))
        return dxm.reshape(x_codes.shape)

    def _dw(self, g_codes, x_codes, w_codes, x_max, fmt):
        gm = self._grad_matrix(g_codes)
        xm = x_codes.reshape(-1, x_codes.shape[-1])
        dwm = pipeline.log_int_mm(gm, xm, x_max, fmt, transpose_g=True)
        if dwm is None:
            dwm = pipeline.log_bilinear(
                lambda a, b: a.t() @ b, gm, xm, terms=gm.shape[0], x_max=x_max, fmt=fmt, sum_dims=(0,)
            )
        return dwm

    def _bias_grad(self, g):
        return g.reshape(-1, g.shape[-1]).sum(0)

    def forward(self, x):
        return _forward(self, x)


class QConv2d(nn.Conv2d, _QuantLayer):
    """``nn.Conv2d`` (groups = 1) computed as exact integer GEMMs of INT4/UINT4 codes.

    The three GEMMs run as PyTorch's own convolution kernels on float tensors
    of integers, each proven exact by the bounds of
    :func:`golden.pipeline.log_bilinear` (a convolution is a sum of at most
    ``terms`` products per output, like the im2col GEMM it equals); captures
    record the im2col GEMMs and check them against these results.

    Parameters are those of ``nn.Conv2d`` (numeric padding only) plus
    ``config``, ``input_mode`` and ``name`` as in :class:`QLinear`.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        bias=True,
        *,
        config,
        input_mode="codes",
        name="conv",
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias
        )
        if isinstance(self.padding, str):
            raise ValueError("QConv2d needs numeric padding")
        self._init_quant(config, input_mode, name)

    def _unfold_args(self):
        return dict(kernel_size=self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)

    def _conv_args(self):
        return (list(self.stride), list(self.padding), list(self.dilation), False, [0, 0], 1)

    def _fwd(self, x_codes, w_codes, x_max):
        terms = w_codes[0].numel()
        if terms * x_max * 7 >= pipeline.FLOAT32_EXACT:
            raise OverflowError(f"{self.fourbit_name}: forward GEMM bound exceeds 2^24")
        return F.conv2d(x_codes, w_codes, None, self.stride, self.padding, self.dilation)

    def _channel_view(self, b, acc):
        return b.reshape(1, -1, 1, 1)

    def _matrices(self, x_codes, w_codes, acc):
        cols = F.unfold(x_codes, **self._unfold_args())  # B x K x L
        xm = cols.transpose(1, 2).reshape(-1, cols.shape[1])  # (B*L) x K
        return xm, w_codes.reshape(w_codes.shape[0], -1), None if acc is None else self._grad_matrix(acc)

    def _grad_matrix(self, g):
        return g.reshape(g.shape[0], g.shape[1], -1).transpose(1, 2).reshape(-1, g.shape[1])

    def _dx_from_matrix(self, dxm, x_shape):
        b = x_shape[0]
        cols = dxm.reshape(b, -1, dxm.shape[-1]).transpose(1, 2)
        # col2im sums overlapping patches: exact integers in float64.
        return F.fold(cols.to(torch.float64), x_shape[2:], **self._unfold_args())

    def _dx(self, g_codes, w_codes, x_codes, fmt):
        terms = w_codes.shape[0] * w_codes.shape[2] * w_codes.shape[3]

        def op(m, w):
            like = torch.empty((), dtype=m.dtype, device=m.device).expand(x_codes.shape)
            return torch.ops.aten.convolution_backward(
                m, like, w.to(m.dtype), None, *self._conv_args(), [True, False, False]
            )[0]

        # An input gradient sums codes of one image (a window of them): sum_dims (1, 2, 3).
        return pipeline.log_bilinear(op, g_codes, w_codes, terms=terms, x_max=7, fmt=fmt, sum_dims=(1, 2, 3))

    def _dw(self, g_codes, x_codes, w_codes, x_max, fmt):
        terms = g_codes.shape[0] * g_codes.shape[2] * g_codes.shape[3]

        # Channels-last operands: the weight-gradient kernel is about 2x faster on CPU, and the
        # exact integer result does not depend on the layout. The codes go in as NHWC, so that the
        # multiplier gathers write channels-last memory directly.
        x_cl = {}

        def op(m, x):
            if m.dtype not in x_cl:
                x_cl[m.dtype] = x.to(m.dtype).contiguous(memory_format=torch.channels_last)
            like = torch.empty((), dtype=m.dtype, device=m.device).expand(w_codes.shape)
            return torch.ops.aten.convolution_backward(
                m.permute(0, 3, 1, 2), x_cl[m.dtype], like, None, *self._conv_args(), [False, True, False]
            )[1].contiguous()

        g_nhwc = g_codes.permute(0, 2, 3, 1).contiguous()
        return pipeline.log_bilinear(op, g_nhwc, x_codes, terms=terms, x_max=x_max, fmt=fmt, sum_dims=(0, 1, 2))

    def _bias_grad(self, g):
        return g.sum((0, 2, 3))

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError(f"QConv2d {self.fourbit_name!r} expects a 4-D input, got shape {tuple(x.shape)}")
        return _forward(self, x)


def _recomputing():
    """True in a forward pass run inside a backward pass (a checkpoint's recomputation)."""
    return torch._C._current_graph_task_id() != -1


def _forward(layer, x):
    recomputing = _recomputing()
    link = layer._link_for(recomputing, torch.is_grad_enabled())
    y = _QGemm.apply(plain(x), layer.weight, layer.bias, layer, state_of(x), recomputing, link)
    # autograd.Function outputs are new tensor objects: the state comes from the side slot.
    state, layer._out_tag = layer._out_tag, None
    return with_state(y, state)


class _Pact(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, alpha, module, tag):
        a = float(alpha.detach())
        step = a / QMAX
        link = None
        out = None
        if module.config.integer_requant and isinstance(tag, AccState) and tag.acc.shape == y.shape:
            m0, shift = requant_params(tag.unit / step)
            link = tag.link
            acc = tag.acc
            if acc.dtype in (torch.int32, torch.float32) and y.dtype == torch.float32:
                # int32 and float32 integers are within the requantizer's 40 bits: one pass
                # (kernels.requant_pact == requant.requantize_pact, and PACT's value code * step).
                out = kernels.requant_pact(acc, m0, shift, step)
            else:
                # fused.requantize_pact == requant.requantize_pact(acc as int64), float64 codes.
                out = _from_masks(*fused.requantize_pact(acc, m0, shift), step, y.dtype)
            cap = module.capture
            if cap is not None and cap.active:
                acc = tag.acc.to(torch.int64)
                check = requantize_pact(acc, m0, shift)
                fast = (out[0].to(torch.uint8), out[2] == kernels.STATE_INSIDE, out[2] == kernels.STATE_SATURATED)
                if not all(torch.equal(a_, b_) for a_, b_ in zip(check, fast)):
                    raise AssertionError(f"{module.fourbit_name}: fast requantization differs from the integer one")
                cap.record(
                    module.fourbit_name,
                    "requant",
                    kind="requant",
                    acc=acc,
                    m0=m0,
                    shift=shift,
                    codes=check[0],
                    alpha=a,
                    acc_unit=tag.unit,
                    producer=tag.producer,
                )
        else:
            yd = y.detach()
            if y.dtype == torch.float32 and a > 0 and math.isfinite(a) and float(torch.tensor(a, dtype=y.dtype)) == a:
                # kernels.pact_float == fused.pact_quantize == formats.quantize_pact plus the masks.
                out = kernels.pact_float(yd, a)
            if out is None:
                out = _from_masks(*fused.pact_quantize(yd, a), step, y.dtype)
        codes, value, state = out
        ctx.save_for_backward(state)
        cap = module.capture
        # While capturing, the unquantized activation PACT(y) = clip(y, 0, alpha) rides along for
        # the next layer's float operand record (an FP16 baseline's activation).
        real = y.detach().clamp(0.0, a) if cap is not None and cap.active else None
        module._out_tag = CodeState(codes, step, False, link, real)
        return value

    @staticmethod
    def backward(ctx, g):
        (state,) = ctx.saved_tensors
        # grad_y == torch.where(inside, g, 0), masked_sat == torch.where(saturated, g, 0), bit for bit.
        grad_y, masked_sat = kernels.pact_backward(g, state)
        return grad_y, masked_sat.sum().reshape(1), None, None


def _from_masks(codes, inside, saturated, step, dtype):
    """(int8 codes, value fl(codes * step), int32 state) from float64 codes and 0/1 masks."""
    state = inside.to(torch.int32) + saturated.to(torch.int32) * kernels.STATE_SATURATED
    return codes.to(torch.int8), (codes * step).to(dtype), state


class PACT(nn.Module):
    """PACT activation (replaces ReLU): UINT4 codes with a learnable clip ``alpha``.

    After a quantized layer it requantizes the integer accumulator with
    :func:`golden.requant.requantize`; otherwise it quantizes the float input
    with :func:`golden.formats.quantize_pact`. Straight-through gradient inside
    (0, alpha), d/dalpha = sum of upstream gradients where x >= alpha.

    Parameters
    ----------
    config : QuantConfig
    name : str

    Attributes
    ----------
    alpha : nn.Parameter
        One-element clip value.
    """

    def __init__(self, *, config, name="pact"):
        super().__init__()
        self.config = config
        self.fourbit_name = name
        self.capture = None
        self.alpha = nn.Parameter(torch.tensor([float(config.pact_alpha)]))

    def forward(self, y):
        if not float(self.alpha.detach()) > 0:
            raise FloatingPointError(
                f"PACT {self.fourbit_name!r}: alpha became {float(self.alpha.detach())}; must stay > 0"
            )
        z = _Pact.apply(plain(y), self.alpha, self, state_of(y))
        state, self._out_tag = self._out_tag, None
        return with_state(z, state)


def _quantize_operand(x, kind, cfg):
    """Integer codes (float32), step and largest magnitude of one QMatMul operand."""
    if kind == "signed":
        codes, step = pipeline.quantize_weight_sawb(x, cfg.sawb_c)  # == formats.quantize_activation
        return codes, step, 7
    # formats.quantize_probability: round_half_even(15 p) in float64, saturating to 0..15.
    codes = torch.round(x.detach().to(torch.float64) * QMAX).clamp_(0, QMAX).to(torch.float32)
    return codes, 1.0 / QMAX, QMAX


class _QMatMulFn(torch.autograd.Function):
    """``a @ b`` of two activations: an exact integer GEMM forward, FP4 log GEMMs backward."""

    @staticmethod
    def forward(ctx, a, b, layer):
        cfg = layer.config
        cap = layer.capture
        if cap is not None and cap.active:
            raise RuntimeError(f"{layer.fourbit_name}: tensor capture does not record attention matmuls")
        a_codes, a_step, a_max = _quantize_operand(a, layer.a_kind, cfg)
        b_codes, b_step, b_max = _quantize_operand(b, layer.b_kind, cfg)
        acc = pipeline.exact_matmul(a_codes, b_codes, a_max, b_max)
        ctx.layer = layer
        ctx.state = (a_codes, b_codes, a_step, b_step, a_max, b_max)
        return _scaled(acc, a_step * b_step, a.dtype)

    @staticmethod
    def backward(ctx, grad_y):
        layer, cfg = ctx.layer, ctx.layer.config
        a_codes, b_codes, a_step, b_step, a_max, b_max = ctx.state
        fmt = cfg.grad_format
        phases = (cfg.dx_phase, cfg.dw_phase) if cfg.tpr else (cfg.dx_phase, cfg.dx_phase)
        codes = pipeline.quantize_grad(
            grad_y.to(torch.float32), 1.0, phases, fmt, rounding=cfg.rounding, ties=cfg.ties, seed=layer._next_seed()
        )
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            # dA = dY B^T: each output sums over dY's last dim (phase dx_phase, as a layer's dX).
            g0, s0 = codes[phases[0]]
            da = pipeline.log_bilinear(
                lambda m, x: m @ x.transpose(-1, -2),
                g0,
                b_codes,
                terms=g0.shape[-1],
                x_max=b_max,
                fmt=fmt,
                sum_dims=(-1,),
            )
            grad_a = _scaled(da, pipeline.grad_unit(fmt, s0, phases[0]) * b_step, grad_y.dtype)
        if ctx.needs_input_grad[1]:
            # dB = A^T dY: each output sums over dY's rows (phase dw_phase, as a layer's dW).
            g1, s1 = codes[phases[1]]
            db = pipeline.log_bilinear(
                lambda m, x: x.transpose(-1, -2) @ m,
                g1,
                a_codes,
                terms=g1.shape[-2],
                x_max=a_max,
                fmt=fmt,
                sum_dims=(-2,),
            )
            grad_b = _scaled(db, pipeline.grad_unit(fmt, s1, phases[1]) * a_step, grad_y.dtype)
        return grad_a, grad_b, None


class QMatMul(nn.Module, _QuantLayer):
    """Product ``a @ b`` of two activations (attention's Q K^T and A V) as 4-bit GEMMs.

    Forward: each operand is quantized per tensor, ``"signed"`` ones with the
    signed INT4 activation quantizer (:func:`golden.formats.quantize_activation`,
    codes -7..7) and ``"probability"`` ones (softmax outputs in [0, 1]) to
    UINT4 with step 1/15 (:func:`golden.formats.quantize_probability`); the
    integer GEMM is exact (:func:`golden.pipeline.exact_matmul`) and scaled by
    the two steps. Backward: the upstream gradient is quantized to FP4 as a
    weight layer's (TPR phases ``dx_phase`` / ``dw_phase``), and ``dA = dY B^T``
    and ``dB = A^T dY`` are exact shift-accumulate GEMMs with the other
    operand's codes (:func:`golden.pipeline.log_bilinear`). The quantizers are
    straight-through. Leading (batch, head) dims broadcast as in ``torch.matmul``.

    Parameters
    ----------
    config : QuantConfig
    a_kind, b_kind : {"signed", "probability"}
        Quantizer of each operand.
    name : str
    """

    def __init__(self, *, config, a_kind="signed", b_kind="signed", name="matmul"):
        super().__init__()
        for label, kind in (("a_kind", a_kind), ("b_kind", b_kind)):
            if kind not in OPERAND_KINDS:
                raise ValueError(f"{label} must be one of {', '.join(OPERAND_KINDS)}, not {kind!r}")
        self._init_quant(config, "signed", name)
        self.a_kind, self.b_kind = a_kind, b_kind

    def forward(self, a, b):
        if a.dim() < 2 or b.dim() < 2 or a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
            raise ValueError(
                f"QMatMul {self.fourbit_name!r}: shapes {tuple(a.shape)} @ {tuple(b.shape)} are not batched matrices"
            )
        self.input_paths["signed"] += 1
        return _QMatMulFn.apply(a, b, self)


def quantized_layers(model):
    """The :class:`QLinear` / :class:`QConv2d` / :class:`QMatMul` modules of ``model``, in registration order."""
    return [m for m in model.modules() if isinstance(m, (QLinear, QConv2d, QMatMul))]


#: Modules :func:`convert` does not look inside: their weights are used by their own forward, not by
#: their submodules' (``nn.MultiheadAttention`` reads ``out_proj.weight`` directly), so they stay FP32, listed.
OPAQUE_MODULES = (
    nn.MultiheadAttention,
    nn.Transformer,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
    nn.RNNBase,
)

#: Modules whose operation commutes with integer codes: a :class:`golden.quantized.QuantizedTensor`
#: keeps its state through them (:data:`golden.quantized.COMMUTING_OPS`), so they are neither
#: converted nor listed as float operations.
CODE_PRESERVING_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.Flatten, nn.Unflatten, nn.Identity)

_CONVERTED = (QLinear, QConv2d, QMatMul, PACT)


def _children(module, prefix):
    """(parent, child name, full name, child) of the modules :func:`convert` visits, in registration order."""
    for child_name, child in module.named_children():
        name = f"{prefix}{child_name}"
        yield module, child_name, name, child
        if not isinstance(child, OPAQUE_MODULES + _CONVERTED):
            yield from _children(child, name + ".")


def _mark_fp32(module, reason):
    # A plain attribute on the module (not on a tensor): survives reshape, compile and checkpointing.
    module.fourbit_fp32 = reason


def convert(model, config, filter=None):
    """Swap the layers of ``model`` (in place) for the quantized ones; returns ``model``.

    ``nn.Linear`` / ``nn.Conv2d`` become :class:`QLinear` / :class:`QConv2d`
    (weights copied) and :class:`golden.models.MatMul` becomes
    :class:`QMatMul`, except the first / last weight layer when
    ``config.keep_first`` / ``config.keep_last`` and the layers ``filter``
    rejects; ``nn.ReLU`` becomes :class:`PACT`; max pooling, flattening and
    reshaping keep the codes as they are (:data:`CODE_PRESERVING_MODULES`).
    The weight layers are ``nn.Linear``, ``nn.Conv2d`` and ``nn.Embedding``
    (an embedding is never quantized: it is a table lookup, and as a model's
    first weight layer it is the one ``keep_first`` keeps). Modules are
    visited in registration order, which must be the data-flow order of the
    weight layers; the first quantized layer reads images through the INT4
    input quantizer when it is the first weight layer and
    ``config.input_quantizer``, every other one is ``input_mode="auto"``:
    PACT codes when its input carries them, else the signed INT4 activation
    quantizer. Everything else stays float; :func:`fp32_modules` lists it.

    Parameters
    ----------
    model : nn.Module
    config : QuantConfig
    filter : callable, optional
        ``filter(module, name) -> bool`` (as torchao's ``filter_fn``), asked for
        every Linear, Conv2d and MatMul that would be quantized: False keeps it FP32.
    """
    from .models import MatMul

    if not isinstance(config, QuantConfig):
        raise TypeError("config must be a QuantConfig")
    if filter is not None and not callable(filter):
        raise TypeError("filter must be a callable filter(module, name) -> bool")
    weight_types = (nn.Linear, nn.Conv2d, nn.Embedding)
    weights = [name for _, _, name, m in _children(model, "") if isinstance(m, weight_types)]
    if not any(isinstance(m, (nn.Linear, nn.Conv2d)) for _, _, _, m in _children(model, "")):
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to quantize")
    keep = {}
    if config.keep_last:
        keep[weights[-1]] = "last weight layer (keep_last)"
    if config.keep_first:
        keep[weights[0]] = "first weight layer (keep_first)"
    device = next((p.device for p in model.parameters()), torch.device("cpu"))

    for parent, child_name, name, child in list(_children(model, "")):
        new = None
        if isinstance(child, (nn.Linear, nn.Conv2d, MatMul)):
            if name in keep:
                _mark_fp32(child, keep[name])
                continue
            if filter is not None and not filter(child, name):
                _mark_fp32(child, "kept by the filter")
                continue
        if isinstance(child, (nn.Linear, nn.Conv2d)) and not isinstance(child, OPAQUE_MODULES):
            mode = "image" if (name == weights[0] and config.input_quantizer) else "auto"
            if isinstance(child, nn.Linear):
                new = QLinear(
                    child.in_features,
                    child.out_features,
                    child.bias is not None,
                    config=config,
                    input_mode=mode,
                    name=name,
                )
            else:
                if child.groups != 1 or isinstance(child.padding, str) or child.padding_mode != "zeros":
                    raise ValueError(f"cannot quantize conv {name!r}: only groups=1, numeric zero padding")
                new = QConv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    child.stride,
                    child.padding,
                    child.dilation,
                    child.bias is not None,
                    config=config,
                    input_mode=mode,
                    name=name,
                )
            new.load_state_dict(child.state_dict())
            new.to(device=child.weight.device, dtype=child.weight.dtype)
        elif isinstance(child, MatMul):
            new = QMatMul(config=config, a_kind=child.a_kind, b_kind=child.b_kind, name=name)
        elif isinstance(child, nn.ReLU):
            new = PACT(config=config, name=name)
            new.to(device=device)
        if new is not None:
            setattr(parent, child_name, new)
    return model


def fp32_modules(model):
    """What of ``model`` computes in float, each with the reason: ``[(name, type name, reason), ...]``.

    Weight layers kept FP32 (first / last, the filter), the host's float
    operations (:data:`HOST_FLOAT_MODULES`), modules :func:`convert` has no
    4-bit version of (``nn.MultiheadAttention``, ``nn.Conv1d``, any other
    module with its own parameters) and any other unknown float module.
    Operations written as functions in a ``forward`` (``torch.matmul``,
    ``F.linear``) are not modules and cannot be listed: write them as modules.
    """
    out = []
    for _, _, name, m in _children(model, ""):
        if isinstance(m, _CONVERTED + CODE_PRESERVING_MODULES + (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            continue
        reason = getattr(m, "fourbit_fp32", None)
        if reason is None:
            if isinstance(m, HOST_FLOAT_MODULES):
                reason = "host float operation"
            elif isinstance(m, OPAQUE_MODULES) or any(True for _ in m.parameters(recurse=False)):
                reason = "no 4-bit version: not converted"
            elif any(True for _ in m.children()):
                continue  # a container: its children are listed
            else:
                reason = "float operation"
        out.append((name, type(m).__name__, reason))
    return out


def describe_fp32(rows):
    """Lines ``reason: name (Type), ...`` of :func:`fp32_modules` rows, one per reason in first-seen order."""
    by_reason = {}
    for name, kind, reason in rows:
        by_reason.setdefault(reason, []).append(f"{name} ({kind})")
    return [f"{reason}: {', '.join(names)}" for reason, names in by_reason.items()]
