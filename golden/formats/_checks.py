"""Argument checks shared by the quantizers: clear errors for wrong types and non-finite data."""

from __future__ import annotations

import functools
import numbers

from fourbit.util.lazy import lazy_import

# Imported at its first use: importing hw.kinds need not take seconds (fourbit.util.lazy).
torch = lazy_import("torch")


@functools.cache
def _dtypes():
    """The accepted (floating-point, integer) dtypes: built at the first check, so that importing loads no torch."""
    return (
        (torch.float16, torch.bfloat16, torch.float32, torch.float64),
        (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64),
    )


def tensor_arg(func: str, name: str, value, *, allow_int: bool = False) -> torch.Tensor:
    """Check that ``value`` is a real-valued torch tensor with finite entries."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{func}: argument '{name}' must be a torch.Tensor, not {type(value).__name__}")
    float_dtypes, int_dtypes = _dtypes()
    allowed = float_dtypes + (int_dtypes if allow_int else ())
    if value.dtype not in allowed:
        kinds = "a floating-point or integer" if allow_int else "a floating-point"
        raise TypeError(f"{func}: argument '{name}' must have {kinds} dtype, not {value.dtype}")
    if value.dtype in float_dtypes:
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise ValueError(f"{func}: argument '{name}' has {bad} non-finite value(s) (NaN or Inf) of {value.numel()}")
    return value


def code_tensor(func: str, name: str, value) -> torch.Tensor:
    """Check that ``value`` is an integer tensor of codes."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{func}: argument '{name}' must be a torch.Tensor, not {type(value).__name__}")
    if value.dtype not in _dtypes()[1]:
        raise TypeError(f"{func}: argument '{name}' must have an integer dtype, not {value.dtype}")
    return value


def positive_scalar(func: str, name: str, value) -> float:
    """A finite, strictly positive real number (Python number or one-element tensor)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{func}: argument '{name}' must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{func}: argument '{name}' must be a real number, not {type(value).__name__}")
    value = float(value)
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"{func}: argument '{name}' must be finite and > 0, got {value!r}")
    return value


def choice(func: str, name: str, value, options) -> None:
    if value not in options:
        raise ValueError(f"{func}: argument '{name}' must be one of {', '.join(map(repr, options))}; got {value!r}")
