"""What every quantized layer shares: the exact integer GEMM step under autograd (:class:`_QGemm`),
the gradient link to its producer (:class:`GradLink`) and the layer bookkeeping (:class:`_QuantLayer`).

A layer kind (:mod:`.linear`, :mod:`.conv`) supplies its three exact GEMMs on its native tensor
shapes (``_fwd``, ``_dx``, ``_dw``) and their matrix form for captures (``_matrices``,
``_grad_matrix``, ``_dx_from_matrix``).
"""

import collections
import zlib

import torch

from .. import fused, kernels, pipeline
from ..formats import quantize_input
from ..quantized import AccState, CodeState, plain, state_of, with_state
from ..requant import QMAX
from .config import INPUT_MODES, QuantConfig

__all__ = ["GradLink"]


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
            x_step, x_max, x_signed, link_in, x_real = 1.0 / 15, 8, True, None, None
            paths["image"] += 1
        elif layer.input_mode == "signed" or (layer.input_mode == "auto" and not has_codes):
            # A float activation of either sign (LayerNorm, GELU, a residual sum): the signed INT4
            # activation quantizer, formats.quantize_activation (the same float64 SAWB operations).
            x_codes, x_step = pipeline.quantize_weight_sawb(x, cfg.sawb_c, dtype=layer._codes_dtype)
            x_max, x_signed, link_in, x_real = 7, True, None, None
            paths["signed"] += 1
        else:
            if not has_codes:
                raise RuntimeError(
                    f"quantized layer {layer.fourbit_name!r} expects UINT4 codes from a PACT activation "
                    "(through reshapes, indexing and max pooling only); its input comes from another operation"
                )
            x_codes, x_step, x_signed, link_in = tag.ints, tag.step, tag.signed, tag.link
            x_real = tag.real  # PACT's unquantized clip of its input, while capturing
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
        capturing = cap is not None and cap.active
        x_float = None
        if capturing:
            # Unquantized operands (an FP16 baseline's): the float activation and master weights.
            x_float = x.detach() if x_real is None else x_real
            cap.forward_gemm(
                layer,
                x_codes=x_codes,
                w_codes=w_codes,
                acc=acc,
                x_max=x_max,
                x_signed=x_signed,
                x_step=x_step,
                w_step=w_step,
                bias=b_codes,
                x_float=x_float,
                w_float=weight.detach(),
            )
        y = _scaled(total, unit, x.dtype)
        ctx.layer = layer
        ctx.state = (x_codes, w_codes, x_step, w_step, x_max, x_signed, link_in)
        ctx.x_float, ctx.w_float = x_float, weight.detach() if capturing else None
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
                cap.dx_gemm(
                    layer,
                    g_codes=g0,
                    w_codes=w_codes,
                    x_shape=x_codes.shape,
                    dx=dx,
                    fmt=fmt,
                    scale_g=s0,
                    phase=phases[0],
                    unit_g=unit,
                    w_step=w_step,
                    grad_y=grad_y,
                    w_float=w_float,
                )
            if link_in is not None:
                link_in.unit = dx_unit
            grad_x = _scaled(dx, dx_unit, grad_y.dtype)
        if ctx.needs_input_grad[1]:
            g1, s1 = codes[phases[1]]
            dw = layer._dw(g1, x_codes, w_codes, x_max, fmt)
            dw_unit = pipeline.grad_unit(fmt, s1, phases[1]) * x_step
            if capturing:
                cap.dw_gemm(
                    layer,
                    g_codes=g1,
                    x_codes=x_codes,
                    w_codes=w_codes,
                    dw=dw,
                    x_max=x_max,
                    x_signed=x_signed,
                    fmt=fmt,
                    scale_g=s1,
                    phase=phases[1],
                    unit_g=unit,
                    x_step=x_step,
                    grad_y=grad_y,
                    x_float=x_float,
                    w_float=w_float,
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
