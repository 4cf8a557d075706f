"""INT4 / UINT4 codes and the quantizers that produce them (SPEC section 1).

- :func:`quantize_input`: images in [0, 1] to INT4.
- :func:`sawb_step` and :func:`quantize_weight`: SAWB per-tensor weight quantization to symmetric INT4.
- :func:`quantize_pact` and :class:`PactQuantize`: PACT activations to UINT4, with the
  straight-through gradient and d/dalpha.
- :func:`quantize_activation`: signed activations (not ReLU outputs: LayerNorm, GELU,
  attention Q/K/V) to symmetric INT4 with a per-tensor SAWB step.
- :func:`quantize_probability`: probabilities in [0, 1] (softmax outputs) to UINT4, step 1/15.

All rounding is done in float64 (``torch.round`` rounds half to even).
"""

from __future__ import annotations

import functools

from fourbit.util.lazy import lazy_import

from ._checks import positive_scalar, tensor_arg
from .base import IntegerFormat

# Imported at its first use: importing hw.kinds need not take seconds (fourbit.util.lazy).
torch = lazy_import("torch")

__all__ = [
    "INT4",
    "UINT4",
    "SAWB_COEFFICIENTS",
    "SAWB_EPS",
    "quantize_input",
    "sawb_step",
    "quantize_weight",
    "quantize_pact",
    "quantize_activation",
    "quantize_probability",
    "PactQuantize",  # noqa: F822 (module __getattr__)
    "pact",
]

INT4 = IntegerFormat(name="int4", bits=4, signed=True)
UINT4 = IntegerFormat(name="uint4", bits=4, signed=False)

#: SAWB clip coefficients (c1, c2) of SPEC section 1.
SAWB_COEFFICIENTS = (12.68, 12.80)
#: Lower bound on the SAWB clip, so that an all-zero tensor still has a step.
SAWB_EPS = 1e-8


def quantize_input(p: torch.Tensor) -> torch.Tensor:
    """Quantize pixels ``p`` in [0, 1] to INT4 codes ``clamp(round_half_even(15 p - 8), -8, 7)``.

    Parameters
    ----------
    p : torch.Tensor
        Floating-point pixels (values outside [0, 1] saturate).

    Returns
    -------
    torch.Tensor
        ``int8`` codes in -8..7, same shape and device.
    """
    tensor_arg("quantize_input", "p", p)
    return torch.round(p.to(torch.float64) * 15 - 8).clamp_(-8, 7).to(torch.int8)


def sawb_step(w: torch.Tensor, c=SAWB_COEFFICIENTS, *, eps: float = SAWB_EPS) -> float:
    """SAWB quantization step of a weight tensor: ``max(c1 sqrt(mean(w^2)) - c2 mean(|w|), eps) / 7``.

    Parameters
    ----------
    w : torch.Tensor
        Floating-point weights. An empty tensor gives ``eps / 7``.
    c : tuple of two floats
        SAWB coefficients (c1, c2).
    eps : float
        Lower bound on the clip value.

    Returns
    -------
    float
        The step ``dw`` (Python float, computed in float64).
    """
    tensor_arg("sawb_step", "w", w)
    try:
        c1, c2 = (float(x) for x in c)
    except (TypeError, ValueError):
        raise TypeError(f"sawb_step: argument 'c' must be a pair of real numbers, not {c!r}") from None
    eps = positive_scalar("sawb_step", "eps", eps)
    if w.numel() == 0:
        return eps / 7
    w64 = w.detach().to(torch.float64)
    clip = c1 * torch.sqrt(torch.mean(w64 * w64)) - c2 * torch.mean(torch.abs(w64))
    return max(float(clip), eps) / 7


def quantize_weight(w: torch.Tensor, step) -> torch.Tensor:
    """INT4 weight codes ``clamp(round_half_even(w / step), -7, 7)``.

    Parameters
    ----------
    w : torch.Tensor
        Floating-point weights.
    step : float
        Quantization step, usually from :func:`sawb_step`.

    Returns
    -------
    torch.Tensor
        ``int8`` codes in -7..7.
    """
    tensor_arg("quantize_weight", "w", w)
    step = positive_scalar("quantize_weight", "step", step)
    return torch.round(w.detach().to(torch.float64) / step).clamp_(-7, 7).to(torch.int8)


def quantize_activation(x: torch.Tensor, c=SAWB_COEFFICIENTS) -> tuple[torch.Tensor, float]:
    """Signed INT4 activation codes: the SAWB rule of the weights applied to an activation tensor.

    ``step = sawb_step(x, c)``, ``code = clamp(round_half_even(x / step), -7, 7)``
    (:func:`quantize_weight`): one per-tensor step from the tensor's own first
    and second moments, no learned parameter, symmetric grid -7..7.

    Parameters
    ----------
    x : torch.Tensor
        Floating-point activations of either sign.
    c : tuple of two floats
        SAWB coefficients (c1, c2).

    Returns
    -------
    codes : torch.Tensor
        ``int8`` codes in -7..7, shape of ``x``.
    step : float
        Real value of code 1.
    """
    tensor_arg("quantize_activation", "x", x)
    step = sawb_step(x, c)
    return quantize_weight(x, step), step


def quantize_probability(p: torch.Tensor) -> torch.Tensor:
    """UINT4 codes of probabilities: ``clamp(round_half_even(15 p), 0, 15)`` (step 1/15).

    Parameters
    ----------
    p : torch.Tensor
        Floating-point values in [0, 1] (softmax outputs; values outside saturate).

    Returns
    -------
    torch.Tensor
        ``uint8`` codes in 0..15.
    """
    tensor_arg("quantize_probability", "p", p)
    return torch.round(p.detach().to(torch.float64) * 15).clamp_(0, 15).to(torch.uint8)


def quantize_pact(x: torch.Tensor, alpha) -> torch.Tensor:
    """PACT UINT4 codes: ``y = clamp(x, 0, alpha)``, ``code = round_half_even(y / (alpha / 15))``.

    Parameters
    ----------
    x : torch.Tensor
        Floating-point activations.
    alpha : float or one-element tensor
        Clip value, finite and > 0.

    Returns
    -------
    torch.Tensor
        ``uint8`` codes in 0..15.
    """
    tensor_arg("quantize_pact", "x", x)
    alpha = positive_scalar("quantize_pact", "alpha", alpha)
    y = x.detach().to(torch.float64).clamp(0.0, alpha)
    return torch.round(y / (alpha / 15)).clamp_(0, 15).to(torch.uint8)


@functools.cache
def _pact_quantize():
    """The class :class:`PactQuantize`, defined at its first use: an autograd function subclasses a torch
    class, and importing this module loads no torch (:func:`fourbit.util.lazy.lazy_import`)."""

    class PactQuantize(torch.autograd.Function):
        """PACT fake quantization with its training gradients.

        Forward: ``quantize_pact(x, alpha) * alpha / 15`` in ``x``'s dtype.
        Backward: straight-through for ``x`` strictly inside (0, alpha), zero
        elsewhere; ``d/dalpha`` is the sum of the upstream gradients where
        ``x >= alpha``.
        """

        @staticmethod
        def forward(ctx, x: torch.Tensor, alpha: torch.Tensor):
            alpha_value = positive_scalar("PactQuantize", "alpha", alpha)
            codes = quantize_pact(x, alpha_value)
            ctx.save_for_backward(x, alpha)
            return (codes.to(torch.float64) * (alpha_value / 15)).to(x.dtype)

        @staticmethod
        def backward(ctx, grad_out: torch.Tensor):
            x, alpha = ctx.saved_tensors
            inside = (x > 0) & (x < alpha)
            grad_x = torch.where(inside, grad_out, torch.zeros_like(grad_out))
            grad_alpha = torch.where(x >= alpha, grad_out, torch.zeros_like(grad_out)).sum()
            return grad_x, grad_alpha.reshape(alpha.shape).to(alpha.dtype)

    PactQuantize.__module__, PactQuantize.__qualname__ = __name__, "PactQuantize"
    return PactQuantize


def __getattr__(name):
    # PEP 562: ``PactQuantize`` (a module attribute to its users) is built on first access.
    if name == "PactQuantize":
        return _pact_quantize()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pact(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Apply :class:`PactQuantize` (``alpha`` a learnable one-element tensor)."""
    return _pact_quantize().apply(x, alpha)
