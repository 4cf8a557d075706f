"""Model conversion: :func:`convert` swaps an ordinary ``nn.Module``'s layers for the quantized ones;
:func:`fp32_modules` lists what stays float, with the reason."""

import torch
from torch import nn

from .config import QuantConfig
from .conv import QConv2d
from .linear import QLinear
from .matmul import QMatMul
from .pact import PACT

__all__ = [
    "convert",
    "quantized_layers",
    "fp32_modules",
    "describe_fp32",
    "OPAQUE_MODULES",
    "HOST_FLOAT_MODULES",
    "CODE_PRESERVING_MODULES",
]

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


def _conv2d_args(conv, name):
    """The positional arguments that rebuild ``nn.Conv2d`` ``conv`` as a quantized convolution.

    ValueError unless it has groups = 1 and numeric zero padding (what the quantized ones compute).
    """
    if conv.groups != 1 or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise ValueError(f"cannot quantize conv {name!r}: only groups=1, numeric zero padding")
    return (
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.bias is not None,
    )


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
    from ..models import MatMul

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
                new = QConv2d(*_conv2d_args(child, name), config=config, input_mode=mode, name=name)
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
