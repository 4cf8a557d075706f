"""The quantized state that travels from one 4-bit layer to the next, carried by the tensor itself.

A quantized layer's output is an ordinary float tensor of real values (any
float operation can consume it), returned as a :class:`QuantizedTensor`: a
``torch.Tensor`` subclass holding one of

- :class:`AccState`: the exact integer accumulator of a quantized layer and its unit
  (read by the :class:`golden.layers.PACT` that requantizes it);
- :class:`CodeState`: the integer codes of a PACT activation and their step
  (read by the next quantized layer, which then takes no second rounding).

The state follows the tensor through the operations that commute with integer
codes (:data:`COMMUTING_OPS`: reshape, view, flatten, permute, transpose,
squeeze, indexing, ``contiguous``, ``clone``, ``detach`` and max pooling), functional or
method, inside ``torch.utils.checkpoint`` and around compiled regions: each
such operation is applied to the state's tensors too. Every other operation
returns a plain tensor (the state is dropped: the next layer quantizes the
float value, the host path), and an in-place operation clears the state of the
tensor it changed, so a state never describes values it no longer matches.

This replaces a Python attribute on the output tensor, which every reshape,
``torch.compile`` region or reentrant checkpoint dropped silently.
"""

import dataclasses

import torch
import torch.nn.functional as F

__all__ = ["AccState", "CodeState", "QuantizedTensor", "COMMUTING_OPS", "state_of", "with_state", "plain"]


@dataclasses.dataclass(frozen=True)
class AccState:
    """A quantized layer's exact integer accumulator (bias included) beside its real output.

    Attributes
    ----------
    acc : torch.Tensor
        The integers (int32, or a float tensor of integers), shape of the value.
    unit : float
        Real value of one accumulator unit (``scale_x * scale_w``).
    link : golden.layers.GradLink
        Carries the consumer's dX unit back to this layer in the backward pass.
    producer : str
        Name of the layer (captures and error messages).
    """

    acc: torch.Tensor
    unit: float
    link: object
    producer: str

    def mapped(self, op, value, *, pooling=False):
        """The state of ``value = op(x)`` for an ``x`` holding this state (``op`` on the accumulator)."""
        return dataclasses.replace(self, acc=op(self.acc))


@dataclasses.dataclass(frozen=True)
class CodeState:
    """Integer activation codes beside their real values ``fl(code * step)``.

    Attributes
    ----------
    ints : torch.Tensor
        The codes (int8, or a float tensor of integers), shape of the value.
    step : float
        Real value of code 1.
    signed : bool
        Signed codes (INT4) or unsigned (PACT's UINT4).
    link : golden.layers.GradLink or None
        Of the layer whose accumulator PACT requantized into these codes.
    real : torch.Tensor or None
        The unquantized value (PACT's clip of its input), only while capturing.
    """

    ints: torch.Tensor
    step: float
    signed: bool
    link: object
    real: object = None

    @property
    def codes(self):
        """The codes as a float32 tensor of integers."""
        return self.ints.to(torch.float32)

    def mapped(self, op, value, *, pooling=False):
        """The state of ``value = op(x)`` for an ``x`` holding this state."""
        real = None if self.real is None else op(self.real)
        if pooling and not self.signed:
            # PACT values are fl32(code * step): strictly increasing in the code, so the pooled values
            # are the values of the pooled codes, and each is within 2^-20 of code * step.
            return dataclasses.replace(self, ints=torch.round(value.detach().to(torch.float32) / self.step), real=real)
        return dataclasses.replace(self, ints=op(self.codes if pooling else self.ints), real=real)


_POOLING = (F.max_pool1d, F.max_pool2d, F.max_pool3d)

#: Operations applied to the state as well as to the values (they move or select elements, so they
#: commute with the integer codes); max pooling commutes because the values increase with the codes.
COMMUTING_OPS = frozenset(
    (
        torch.Tensor.reshape,
        torch.reshape,
        torch.Tensor.view,
        torch.Tensor.flatten,
        torch.flatten,
        torch.Tensor.unflatten,
        torch.unflatten,
        torch.Tensor.permute,
        torch.permute,
        torch.Tensor.transpose,
        torch.transpose,
        torch.Tensor.t,
        torch.t,
        torch.Tensor.squeeze,
        torch.squeeze,
        torch.Tensor.unsqueeze,
        torch.unsqueeze,
        torch.Tensor.__getitem__,
        torch.Tensor.contiguous,
        torch.Tensor.clone,
        torch.clone,
        torch.Tensor.detach,
        torch.detach,
        *_POOLING,
    )
)


class QuantizedTensor(torch.Tensor):
    """A float tensor of real values with the integer state they were computed from (``fourbit_state``).

    Made by :func:`with_state`; read with :func:`state_of`. See the module docstring for which
    operations keep the state.
    """

    fourbit_state = None

    @classmethod
    @torch.compiler.disable  # (eager: a compiled copy would run the float op on the subclass under AOT)
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        source = args[0] if args and isinstance(args[0], QuantizedTensor) else None
        state = None if source is None else source.fourbit_state
        with torch._C.DisableTorchFunctionSubclass():
            if state is None:
                return func(*args, **kwargs)
            version = source._version
            out = func(*args, **kwargs)
            changed = source._version != version
        if changed:
            # In place (x.relu_(), x += y): the values changed under the state.
            source.fourbit_state = None
            return out
        if (
            func not in COMMUTING_OPS
            or type(out) is not torch.Tensor
            or (func is torch.Tensor.view and _has_dtype(args, kwargs))
        ):
            return out
        mapped = state.mapped(lambda t: func(t, *args[1:], **kwargs), out, pooling=func in _POOLING)
        held = mapped.acc if isinstance(mapped, AccState) else mapped.ints
        return with_state(out, mapped) if held.shape == out.shape else out


def _has_dtype(args, kwargs):
    return any(isinstance(a, torch.dtype) for a in (*args[1:], *kwargs.values()))


def with_state(value, state):
    """``value`` (an alias, autograd history kept) as a :class:`QuantizedTensor` holding ``state``."""
    out = value.as_subclass(QuantizedTensor)
    out.fourbit_state = state
    return out


def state_of(value):
    """The :class:`AccState` / :class:`CodeState` ``value`` carries, or None."""
    return value.fourbit_state if isinstance(value, QuantizedTensor) else None


def plain(value):
    """``value`` as a plain ``torch.Tensor`` (an alias, autograd history kept)."""
    return value.as_subclass(torch.Tensor) if isinstance(value, QuantizedTensor) else value
