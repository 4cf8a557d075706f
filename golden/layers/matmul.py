"""The product of two activations (attention's Q K^T and A V) as 4-bit GEMMs: :class:`QMatMul`."""

import torch
from torch import nn

from .. import pipeline
from ..requant import QMAX
from .gemm import _QuantLayer, _scaled

__all__ = ["QMatMul", "OPERAND_KINDS"]

#: Operand quantizers of a :class:`QMatMul`.
OPERAND_KINDS = ("signed", "probability")


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
