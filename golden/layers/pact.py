"""PACT activation (replaces ReLU): :class:`PACT`, the integer requantizer after a quantized layer."""

import math

import torch
from torch import nn

from .. import fused, kernels
from ..quantized import AccState, CodeState, plain, state_of, with_state
from ..requant import QMAX, requant_params

__all__ = ["PACT"]


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
                cap.requant(
                    module, acc=tag.acc, m0=m0, shift=shift, out=out, alpha=a, acc_unit=tag.unit, producer=tag.producer
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
